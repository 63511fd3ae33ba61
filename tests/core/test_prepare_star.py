"""prepare-star: pairing by name, header checks before writing, averages, STAR contents."""
import os

import mrcfile
import numpy as np
import pytest

from isonet2core.cli.main import main
from isonet2core.config import PrepareStarConfig
from isonet2core.io import mrcio, star
from isonet2core.io.star import TomogramsTable
from isonet2core.steps import prepare
from isonet2core.training import budget

SHAPE = (4, 8, 8)


def _write(path, value=None, shape=SHAPE, voxel=5.4, seed=0):
    data = np.random.default_rng(seed).standard_normal(shape) if value is None \
        else np.full(shape, value)
    return mrcio.write_mrc(path, data, voxel)


@pytest.fixture
def halves(tmp_path):
    """even/odd folders, names differing by EVN/ODD, listing orders that do not match."""
    even, odd = tmp_path / "EVN", tmp_path / "ODD"
    for i, name in enumerate(("TS_2", "TS_10", "TS_1")):
        _write(even / f"{name}_EVN.mrc", seed=i)
        _write(odd / f"{name}_ODD.mrc", seed=10 + i)
    return even, odd


def _run(tmp_path, monkeypatch, capsys, *args):
    monkeypatch.chdir(tmp_path)
    code = main(["prepare_star", *args])
    return code, capsys.readouterr()


def _assert_one_line_error(code, out, *fragments):
    assert code == 2
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("isonet2 prepare-star: error:"), out.err
    assert "Traceback" not in out.err
    for f in fragments:
        assert f in lines[0], (f, lines[0])


def test_halves_with_average(tmp_path, monkeypatch, capsys, halves):
    code, out = _run(tmp_path, monkeypatch, capsys, "--even", "EVN", "--odd", "ODD",
                     "--defocus", "[30000,31000,32000]", "--create_average", "True",
                     "--tilt_min", "-55", "--tilt-max", "58", "--ac", "0.07", "--tilt_step", "3")
    assert code == 0, out.err
    table = TomogramsTable.read(tmp_path / "tomograms.star")
    assert [table.tomo_name(r) for r in range(3)] == ["TS_1", "TS_2", "TS_10"]   # natural order
    assert [table.index(r) for r in range(3)] == [1, 2, 3]
    assert [table.value(r, star.DEFOCUS) for r in range(3)] == [30000.0, 31000.0, 32000.0]
    assert table.value(0, star.TOMO_HALF1) == os.path.join("EVN", "TS_1_EVN.mrc")
    assert table.value(0, star.TOMO_HALF2) == os.path.join("ODD", "TS_1_ODD.mrc")
    assert table.value(2, star.N_SUBTOMO) == 1000                          # 3000 // 3
    assert table.value(0, star.TILT_STEP) == 3.0
    m = table.microscope(1)
    assert (m.pixel_size_a, m.tilt_min_deg, m.tilt_max_deg, m.amplitude_contrast) == (5.4, -55.0, 58.0, 0.07)
    # the average is (even + odd) / 2, written beside the STAR file
    full = table.path(2, star.TOMO_FULL)
    assert full == tmp_path / "full_average" / "TS_10.mrc"
    data, voxel = mrcio.read_mrc(full)
    even, _ = mrcio.read_mrc(tmp_path / "EVN" / "TS_10_EVN.mrc")
    odd, _ = mrcio.read_mrc(tmp_path / "ODD" / "TS_10_ODD.mrc")
    np.testing.assert_allclose(data, (even + odd) / 2, rtol=1e-6)
    assert voxel == 5.4


def test_identical_names_full_masks_and_coordinates(tmp_path):
    for name in ("a", "b"):
        _write(tmp_path / "even" / f"{name}.mrc")
        _write(tmp_path / "odd" / f"{name}.mrc", seed=1)
        _write(tmp_path / "full" / f"{name}.mrc")
    _write(tmp_path / "masks" / "a_mask.mrc")
    (tmp_path / "coords").mkdir()
    (tmp_path / "coords" / "b.coords").write_text("# x y z\n1 2 3\n4 5 6\n\n7 8 9\n")
    cfg = PrepareStarConfig(full_dir=str(tmp_path / "full"), even_dir=str(tmp_path / "even"),
                            odd_dir=str(tmp_path / "odd"), mask_dir=str(tmp_path / "masks"),
                            coordinate_dir=str(tmp_path / "coords"), pixel_size_a=7.0,
                            number_subtomos=250, star_name=str(tmp_path / "out" / "t.star"))
    table = prepare.prepare_star(cfg)
    back = TomogramsTable.read(tmp_path / "out" / "t.star")
    assert back.to_records() == TomogramsTable.read(table.write(tmp_path / "x.star")).to_records()
    assert back.pixel_size_a(0) == 7.0
    # the STAR is not in the working directory: paths are absolute
    assert back.value(0, star.TOMO_FULL) == str(tmp_path / "full" / "a.mrc")
    assert back.value(0, star.MASK) == str(tmp_path / "masks" / "a_mask.mrc")
    assert back.value(1, star.MASK) is None
    assert back.value(0, star.BOX_FILE) is None and back.value(0, star.N_SUBTOMO) == 250
    assert back.value(1, star.BOX_FILE) == str(tmp_path / "coords" / "b.coords")
    assert back.value(1, star.N_SUBTOMO) == 3
    assert not (tmp_path / "out" / "full_average").exists()


def test_count_coordinates(tmp_path):
    p = tmp_path / "t.star"
    p.write_text("data_particles\n\nloop_\n_rlnCoordinateX #1\n_rlnCoordinateY #2\n"
                 "_rlnCoordinateZ #3\n1 2 3\n4 5 6\n")
    assert prepare.count_coordinates(p) == 2
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n4 five 6\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 2"):
        prepare.count_coordinates(bad)
    empty = tmp_path / "empty.coords"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match=r"empty\.coords holds no coordinates"):
        prepare.count_coordinates(empty)


def test_auto_number_subtomos():
    assert budget.default_subtomos_per_tomogram(1) == 3000
    assert budget.default_subtomos_per_tomogram(7) == 428
    assert budget.default_subtomos_per_tomogram(5000) == 1


def _cfg(tmp_path, **kw):
    kw.setdefault("even_dir", str(tmp_path / "EVN"))
    kw.setdefault("odd_dir", str(tmp_path / "ODD"))
    kw.setdefault("star_name", str(tmp_path / "tomograms.star"))
    return PrepareStarConfig(**kw)


def _nothing_written(tmp_path):
    return not (tmp_path / "tomograms.star").exists() and not (tmp_path / "full_average").exists()


def test_unmatched_even_odd_files_are_listed(tmp_path, halves):
    _write(tmp_path / "EVN" / "TS_7_EVN.mrc")
    _write(tmp_path / "ODD" / "TS_8_ODD.mrc")
    with pytest.raises(ValueError, match=r"even without odd: TS_7_EVN\.mrc; "
                                         r"odd without even: TS_8_ODD\.mrc"):
        prepare.prepare_star(_cfg(tmp_path, create_average=True))
    assert _nothing_written(tmp_path)


def test_swapped_folders(tmp_path, halves):
    with pytest.raises(ValueError, match=r"TS_1_ODD\.mrc is tagged 'odd'.*even folder"):
        prepare.match_tomograms(None, tmp_path / "ODD", tmp_path / "EVN")


def test_shape_mismatch_names_both_files(tmp_path, halves):
    _write(tmp_path / "ODD" / "TS_10_ODD.mrc", shape=(4, 8, 9))
    with pytest.raises(ValueError, match=r"shape mismatch: .*TS_10_EVN\.mrc is \(4, 8, 8\).*"
                                         r"TS_10_ODD\.mrc is \(4, 8, 9\)"):
        prepare.prepare_star(_cfg(tmp_path, create_average=True))
    assert _nothing_written(tmp_path)


def test_pixel_size_mismatch_names_both_files(tmp_path, halves):
    _write(tmp_path / "ODD" / "TS_2_ODD.mrc", voxel=10.8, seed=99)
    with pytest.raises(ValueError, match=r"pixel size mismatch: .*TS_2_EVN\.mrc has 5\.4 A.*"
                                         r"TS_2_ODD\.mrc has 10\.8 A"):
        prepare.prepare_star(_cfg(tmp_path))
    assert _nothing_written(tmp_path)
    # an explicit pixel size overrides the headers
    table = prepare.prepare_star(_cfg(tmp_path, pixel_size_a=5.4))
    assert table.pixel_size_a(1) == 5.4


def test_header_without_pixel_size(tmp_path, halves):
    for seed, (folder, tag) in enumerate((("EVN", "EVN"), ("ODD", "ODD"))):
        _write(tmp_path / folder / f"TS_1_{tag}.mrc", voxel=5.4, seed=seed)
        path = tmp_path / folder / f"TS_1_{tag}.mrc"
        with mrcfile.open(str(path), mode="r+") as mrc:
            mrc.header.cella = (0, 0, 0)
    with pytest.raises(ValueError, match=r"TS_1_EVN\.mrc: the header has no positive pixel size \(0 A\); give --pixel_size"):
        prepare.prepare_star(_cfg(tmp_path))


def test_truncated_and_corrupt_maps_are_found_before_writing(tmp_path, halves):
    path = tmp_path / "ODD" / "TS_10_ODD.mrc"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"TS_10_ODD\.mrc is truncated"):
        prepare.prepare_star(_cfg(tmp_path, create_average=True))
    assert _nothing_written(tmp_path)
    path.write_bytes(b"\0" * 2048)
    with pytest.raises(ValueError, match=r"TS_10_ODD\.mrc is not an MRC file"):
        prepare.prepare_star(_cfg(tmp_path))


def test_constant_half_is_refused_when_averaging(tmp_path, halves):
    _write(tmp_path / "EVN" / "TS_1_EVN.mrc", value=0.0)
    with pytest.raises(ValueError, match=r"TS_1_EVN\.mrc is constant"):
        prepare.prepare_star(_cfg(tmp_path, create_average=True))
    assert not (tmp_path / "tomograms.star").exists()


def test_empty_and_missing_folders(tmp_path, halves):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no maps here")
    with pytest.raises(ValueError, match=r"full folder .*empty holds no MRC files"):
        prepare.prepare_star(PrepareStarConfig(full_dir=str(tmp_path / "empty")))
    with pytest.raises(FileNotFoundError, match=r"odd folder not found: .*nowhere"):
        prepare.prepare_star(_cfg(tmp_path, odd_dir=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match=r"mask folder .*empty holds no mask files"):
        prepare.prepare_star(_cfg(tmp_path, mask_dir=str(tmp_path / "empty")))
    assert _nothing_written(tmp_path)


def test_defocus_count_must_match(tmp_path, halves):
    with pytest.raises(ValueError, match="defocus: 2 values given for 3 tomograms"):
        prepare.prepare_star(_cfg(tmp_path, defocus_a=(1.0, 2.0)))


def test_mask_shape_must_match(tmp_path, halves):
    _write(tmp_path / "masks" / "TS_1_mask.mrc", shape=(2, 8, 8))
    with pytest.raises(ValueError, match=r"TS_1_EVN\.mrc is \(4, 8, 8\).*TS_1_mask\.mrc is \(2, 8, 8\)"):
        prepare.prepare_star(_cfg(tmp_path, mask_dir=str(tmp_path / "masks")))


@pytest.mark.parametrize("args, fragments", [
    (["--tilt_min", "60", "--tilt_max", "-60"], ["tilt_min (60.0)", "tilt_max (-60.0)"]),
    (["--tilt_max", "95"], ["95.0", "[-90, 90]"]),
    (["--pixel_size", "-3"], ["pixel_size", "-3.0"]),
    (["--pixel_size", "0"], ["pixel_size", "0.0"]),
    (["--defocus", "30000,-5"], ["defocus", "-5.0"]),
    (["--defocus", "[1,2]"], ["2 values given for 3 tomograms"]),
    (["--number_subtomos", "0"], ["number_subtomos", "0"]),
])
def test_cli_bad_values_exit_2_before_writing(tmp_path, monkeypatch, capsys, halves, args, fragments):
    code, out = _run(tmp_path, monkeypatch, capsys, "--even", "EVN", "--odd", "ODD",
                     "--create_average", "True", *args)
    _assert_one_line_error(code, out, *fragments)
    assert _nothing_written(tmp_path)


def test_cli_file_errors_exit_2(tmp_path, monkeypatch, capsys, halves):
    code, out = _run(tmp_path, monkeypatch, capsys, "--even", "EVN", "--odd", "missing")
    _assert_one_line_error(code, out, "odd folder not found", "missing")
    _write(tmp_path / "EVN" / "extra_EVN.mrc")
    code, out = _run(tmp_path, monkeypatch, capsys, "--even", "EVN", "--odd", "ODD")
    _assert_one_line_error(code, out, "even without odd: extra_EVN.mrc")
    code, out = _run(tmp_path, monkeypatch, capsys, "--even", "EVN")
    _assert_one_line_error(code, out, "--even and --odd")
    code, out = _run(tmp_path, monkeypatch, capsys)
    _assert_one_line_error(code, out, "--full")
    assert not (tmp_path / "tomograms.star").exists()


def test_the_default_layout_is_the_programs_and_later_commands_keep_it(tmp_path, monkeypatch, capsys, halves):
    """prepare-star writes the IsoNet2 program's layout (rlnTomoName the full map, None for
    empty); make-mask updates it in that layout; --star_layout relion5 writes names."""
    import starfile
    code, out = _run(tmp_path, monkeypatch, capsys, "--even", "EVN", "--odd", "ODD", "--create_average", "True")
    assert code == 0, out.err
    df = starfile.read(tmp_path / "tomograms.star")
    assert df[star.TOMO_NAME].tolist() == [f"full_average/TS_{i}.mrc" for i in (1, 2, 10)]
    assert df[star.MASK].tolist() == ["None"] * 3 and set(star.ISONET2_COLUMNS) <= set(df.columns)
    assert main(["make-mask", "tomograms.star", "--output_dir", "masks"]) == 0
    df = starfile.read(tmp_path / "tomograms.star")
    assert df[star.TOMO_NAME].tolist() == [f"full_average/TS_{i}.mrc" for i in (1, 2, 10)]
    assert df[star.MASK].tolist() == [f"masks/TS_{i}_mask.mrc" for i in (1, 2, 10)]
    assert df[star.DECONV].tolist() == ["None"] * 3
    assert TomogramsTable.read(tmp_path / "tomograms.star").layout == "isonet2"
    code, out = _run(tmp_path, monkeypatch, capsys, "--even", "EVN", "--odd", "ODD", "--star_layout", "relion5",
                     "--star_name", "r5.star")
    assert code == 0, out.err
    assert starfile.read(tmp_path / "r5.star")[star.TOMO_NAME].tolist() == ["TS_1", "TS_2", "TS_10"]
