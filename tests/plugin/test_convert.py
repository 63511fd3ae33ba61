"""Conversion of Scipion objects to the tomograms STAR (isonet2scipion.convert).

Scipion objects are built in temporary sqlite files (sets of tomograms, tilt series and CTF
series), converted, written with isonet2core.io.star and read back.
"""
import os

import pytest
from pyworkflow.object import Pointer
from scipion_objects import acquisition, ctf_series_set, tilt_series_set, tomogram, tomogram_set
from tomo.objects import TomoMask

from isonet2core.io import star
from isonet2scipion import convert, ctf_inputs
from isonet2scipion.constants import HALF_ORDER_AUTO, HALF_ORDER_EVEN_ODD, HALF_ORDER_ODD_EVEN


# ------------------------------------------------------------------ even / odd recognition
@pytest.mark.parametrize("paths, expected", [
    # IMOD (Scipion plugin) stores [odd, even] with _odd/_even suffixes
    (["R/extra/TS_01_odd.mrc", "R/extra/TS_01_even.mrc"], ("R/extra/TS_01_even.mrc", "R/extra/TS_01_odd.mrc")),
    # AreTomo-style tags, already [even, odd]
    (["x/TS_01_EVN_Vol.mrc", "x/TS_01_ODD_Vol.mrc"], ("x/TS_01_EVN_Vol.mrc", "x/TS_01_ODD_Vol.mrc")),
    # tags in folder names, same file name
    (["odd/tomo_001.mrc", "even/tomo_001.mrc"], ("even/tomo_001.mrc", "odd/tomo_001.mrc")),
    # RELION-style half1 (even) / half2 (odd)
    (["t_half2.mrc", "t_half1.mrc"], ("t_half1.mrc", "t_half2.mrc")),
    # a tsId containing "odd" does not confuse it: only the differing parts count
    (["odd_cells/TS_even.mrc", "odd_cells/TS_odd.mrc"], ("odd_cells/TS_even.mrc", "odd_cells/TS_odd.mrc")),
])
def test_halves_are_recognised_by_file_name_tags(paths, expected):
    assert convert.order_halves(paths) == expected
    assert convert.order_halves(list(reversed(paths))) == expected


def test_untagged_halves_follow_imod_order_and_form_option_forces_it():
    # no tags: the list is read as [odd, even], the order IMOD and AreTomo store
    assert convert.order_halves(["a.mrc", "b.mrc"]) == ("b.mrc", "a.mrc")
    assert convert.order_halves(["a.mrc", "b.mrc"], HALF_ORDER_ODD_EVEN) == ("b.mrc", "a.mrc")
    assert convert.order_halves(["a.mrc", "b.mrc"], HALF_ORDER_EVEN_ODD) == ("a.mrc", "b.mrc")
    # a forced order wins over tags
    assert convert.order_halves(["t_odd.mrc", "t_even.mrc"], HALF_ORDER_EVEN_ODD) == \
        ("t_odd.mrc", "t_even.mrc")


def test_untagged_links_are_followed_to_tagged_files(tmp_path):
    for name in ("TS_01_EVN.mrc", "TS_01_ODD.mrc"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "h1.mrc").symlink_to(tmp_path / "TS_01_ODD.mrc")
    (tmp_path / "h2.mrc").symlink_to(tmp_path / "TS_01_EVN.mrc")
    even, odd = convert.order_halves([str(tmp_path / "h2.mrc"), str(tmp_path / "h1.mrc")],
                                     HALF_ORDER_AUTO)
    assert (even, odd) == (str(tmp_path / "h2.mrc"), str(tmp_path / "h1.mrc"))


def test_order_halves_needs_two_different_paths():
    with pytest.raises(ValueError, match="two different half maps"):
        convert.order_halves(["a.mrc"])
    with pytest.raises(ValueError, match="two different half maps"):
        convert.order_halves(["a.mrc", "a.mrc"])


# ------------------------------------------------------------------ tsId matching
def test_match_by_ts_id_reports_missing_and_extra():
    m = convert.match_by_ts_id(["TS_01", "TS_02", "TS_03"], ["TS_03", "TS_01", "TS_09"])
    assert m.pairs == {"TS_01": "TS_01", "TS_03": "TS_03"}
    assert m.missing == ["TS_02"]
    assert m.extra == ["TS_09"]


def test_match_by_ts_id_tolerates_even_odd_words_only_when_asked():
    even, odd = ["TS_01_even", "TS_02_even"], ["TS_01_odd", "TS_02_odd", "TS_03_odd"]
    assert convert.match_by_ts_id(even, odd).pairs == {}
    m = convert.match_by_ts_id(even, odd, tolerate_half_tags=True)
    assert m.pairs == {"TS_01_even": "TS_01_odd", "TS_02_even": "TS_02_odd"}
    assert m.missing == [] and m.extra == ["TS_03_odd"]


# ------------------------------------------------------------------ defocus at 0 degrees
def test_defocus_at_zero_tilt_takes_mean_of_u_and_v_nearest_zero():
    entries = [(-6.0, 30000, 31000), (-3.0, 20000, 22000), (3.5, 10000, 10000),
               (6.0, 1000, 1000)]
    assert ctf_inputs.defocus_at_zero_tilt(entries) == pytest.approx(21000.0)


def test_defocus_at_zero_tilt_averages_tilts_equally_near_zero():
    assert ctf_inputs.defocus_at_zero_tilt([(-1.5, 20000, 20000), (1.5, 22000, 24000),
                                         (4.5, 0, 0)]) == pytest.approx(21500.0)
    with pytest.raises(ValueError):
        ctf_inputs.defocus_at_zero_tilt([])


# ------------------------------------------------------------------ Scipion objects
ANGLES = [-6.0, -3.0, 0.0, 3.0, 6.0]


def _tomogram(ts_id, path, halves=(), acq=None, sampling=10.0):
    return tomogram(ts_id, path, sampling=sampling, acq=acq, halves=halves)


def _ctf_set(tmp_path, defocus_by_ts, disabled=()):
    """Tilt series with ANGLES in acquisition order 2,0,1,3,4 (dose symmetric-like) and a CTF
    series per tsId whose defocus grows with |tilt|: U = d + 1000*|tilt|, V = U + 400.
    ``disabled``: (tsId, angle) of tilt images excluded (disabled), as IMOD and AreTomo do."""
    acq_orders = [3, 1, 0, 2, 4]
    ts_set = tilt_series_set(tmp_path, list(defocus_by_ts), ANGLES, acq_orders, disabled=disabled,
                             acq=None)
    return ctf_series_set(tmp_path, ts_set, defocus_by_ts, ANGLES, acq_orders)


def test_defocus_by_ts_id_from_ctf_series(tmp_path):
    ctf_set = _ctf_set(tmp_path, {"TS_01": 30000.0, "TS_02": 45000.0})
    info = ctf_inputs.ctf_by_ts_id(ctf_set)
    defocus, errors = info.defocus_a, info.errors
    assert errors == []
    # tilt 0: U = d, V = d + 400 -> mean d + 200
    assert defocus == {"TS_01": pytest.approx(30200.0), "TS_02": pytest.approx(45200.0)}


def test_tilt_range_comes_from_the_enabled_tilts(tmp_path):
    # TS_01 had its two highest tilts excluded (disabled), TS_02 none
    info = ctf_inputs.ctf_by_ts_id(_ctf_set(tmp_path, {"TS_01": 30000.0, "TS_02": 40000.0},
                                         disabled={("TS_01", 3.0), ("TS_01", 6.0)}))
    assert info.errors == []
    assert info.tilt_ranges == {"TS_01": (-6.0, 0.0), "TS_02": (-6.0, 6.0)}
    tomos = tomogram_set(tmp_path, "tomos", [_tomogram(t, str(tmp_path / f"{t}.mrc"))
                                             for t in ("TS_01", "TS_02", "TS_03")])
    full, _ = convert.tomograms_by_ts_id(tomos, "tomograms")
    entries, errors = convert.collect_entries(full=full, tilt_ranges=info.tilt_ranges)
    assert errors == []
    got = {e.ts_id: (e.tilt_min_deg, e.tilt_max_deg, e.tilt_source) for e in entries}
    # TS_03 has no tilt series: its acquisition (-60, 60)
    assert got == {"TS_01": (-6.0, 0.0, convert.TILT_FROM_TILT_SERIES),
                   "TS_02": (-6.0, 6.0, convert.TILT_FROM_TILT_SERIES),
                   "TS_03": (-60.0, 60.0, convert.TILT_FROM_ACQUISITION)}
    # the form's range always wins
    entries, _ = convert.collect_entries(full=full, tilt_range=(-50.0, 40.0),
                                         tilt_ranges=info.tilt_ranges)
    assert {(e.tilt_min_deg, e.tilt_max_deg, e.tilt_source) for e in entries} == \
        {(-50.0, 40.0, convert.TILT_FROM_FORM)}
    # a single enabled tilt is no range: the error names the tomogram and the source
    _, errors = convert.collect_entries(full=full, tilt_ranges={"TS_01": (0.0, 0.0)})
    assert any("TS_01 (0.0, 0.0, from the enabled tilts" in e for e in errors)


def test_every_tilt_disabled_or_broken_tilt_series_pointer_is_an_error(tmp_path):
    ctf_set = _ctf_set(tmp_path, {"TS_01": 30000.0},
                       disabled={("TS_01", a) for a in ANGLES})
    info = ctf_inputs.ctf_by_ts_id(ctf_set)
    assert info.tilt_ranges == {} and len(info.errors) == 1 and "TS_01" in info.errors[0]

    class BrokenSeries:      # a CTF series whose tilt-series pointer fails to resolve
        def getTsId(self):
            return "TS_09"

        def getTiltSeries(self):
            raise AttributeError("'NoneType' object has no attribute 'outputTiltSeries'")

    class OneSeriesSet:
        def iterItems(self):
            yield BrokenSeries()

    info = ctf_inputs.ctf_by_ts_id(OneSeriesSet())
    assert info.defocus_a == {} and len(info.errors) == 1
    assert "TS_09" in info.errors[0] and "cannot be read" in info.errors[0]

    # the set's own link to the tilt series broken: one error for the set
    ctf_set.setSetOfTiltSeries(Pointer())
    info = ctf_inputs.ctf_by_ts_id(ctf_set)
    assert info.defocus_a == {} and len(info.errors) == 1
    assert "tilt series of the CTF estimations cannot be found" in info.errors[0]


def _mrc(path, shape_zyx, voxel_a=10.0):
    import mrcfile
    import numpy as np
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(np.zeros(shape_zyx, np.float32))
        m.voxel_size = voxel_a
    return str(path)


def test_cube_and_mask_checks_name_the_tomogram_and_shapes(tmp_path):
    tomos = {"TS_01": _tomogram("TS_01", _mrc(tmp_path / "a.mrc", (40, 64, 64))),
             "TS_02": _tomogram("TS_02", _mrc(tmp_path / "b.mrc", (64, 64, 64)))}
    assert convert.shape_zyx(tomos["TS_01"]) == (40, 64, 64)
    assert convert.cube_errors(tomos, 32) == []
    errors = convert.cube_errors(tomos, 48)       # TS_01 is 40 voxels thick
    assert len(errors) == 1 and "TS_01" in errors[0] and "(40, 64, 64)" in errors[0]
    assert "cube_size 48" in errors[0]
    missing = {"TS_03": _tomogram("TS_03", str(tmp_path / "gone.mrc"))}
    assert "cannot be read" in convert.cube_errors(missing, 32)[0]

    masks = {"TS_01": _tomogram("TS_01", _mrc(tmp_path / "ma.mrc", (40, 64, 64))),
             "TS_02": _tomogram("TS_02", _mrc(tmp_path / "mb.mrc", (32, 32, 32)), sampling=20.0)}
    assert convert.mask_mismatches({"TS_01": tomos["TS_01"]}, masks) == []
    errors = convert.mask_mismatches(tomos, masks)
    assert len(errors) == 2 and all("TS_02" in e for e in errors)
    assert any("(32, 32, 32)" in e and "(64, 64, 64)" in e for e in errors)
    assert any("20 Å/px" in e and "10 Å/px" in e for e in errors)


def test_star_from_scipion_objects_with_linked_halves_and_ctf(tmp_path):
    tomos = [_tomogram("TS_01", str(tmp_path / "TS_01.mrc"),
                       halves=[str(tmp_path / "TS_01_odd.mrc"), str(tmp_path / "TS_01_even.mrc")]),
             _tomogram("TS_02", str(tmp_path / "TS_02.mrc"),
                       halves=[str(tmp_path / "TS_02_odd.mrc"), str(tmp_path / "TS_02_even.mrc")],
                       acq=acquisition(-54.0, 48.0))]
    tomo_set = tomogram_set(tmp_path, "tomos", tomos)
    # the CTF set covers TS_01 and an extra tilt series TS_07, not TS_02
    info = ctf_inputs.ctf_by_ts_id(_ctf_set(tmp_path, {"TS_01": 30000.0, "TS_07": 10000.0}))
    defocus, errors = info.defocus_a, info.errors
    full, e = convert.tomograms_by_ts_id(tomo_set, "tomograms")
    assert errors == [] and e == []

    # a CTF mode needs a defocus for TS_02: the error names it
    entries, errors = convert.collect_entries(full=full, defocus=defocus, need_defocus=True)
    assert len(errors) == 1 and "TS_02" in errors[0] and "TS_01" not in errors[0]

    # with the fallback value it converts; the extra CTF series is ignored
    entries, errors = convert.collect_entries(full=full, defocus=defocus, defocus_a=25000.0,
                                              need_defocus=True)
    assert errors == []
    star_path = convert.write_tomograms_star(entries, tmp_path / "out" / "tomograms.star")
    table = star.TomogramsTable.read(star_path)
    assert len(table) == 2 and table.has_halves()
    rows = {table.tomo_name(r): r for r in range(len(table))}
    r1, r2 = rows["TS_01"], rows["TS_02"]
    assert table.value(r1, star.TOMO_FULL) == str(tmp_path / "TS_01.mrc")
    assert table.value(r1, star.TOMO_HALF1) == str(tmp_path / "TS_01_even.mrc")
    assert table.value(r1, star.TOMO_HALF2) == str(tmp_path / "TS_01_odd.mrc")
    assert table.value(r1, star.DEFOCUS) == pytest.approx(30200.0)
    assert table.value(r2, star.DEFOCUS) == pytest.approx(25000.0)
    assert [table.index(r1), table.index(r2)] == [1, 2]
    mic = table.microscope(r2)
    assert (mic.pixel_size_a, mic.voltage_kv, mic.cs_mm, mic.amplitude_contrast) == \
        (10.0, 300.0, 2.7, pytest.approx(0.07))
    assert (mic.tilt_min_deg, mic.tilt_max_deg) == (-54.0, 48.0)

    # a tilt range given in the form overrides the acquisitions
    entries, errors = convert.collect_entries(full=full, tilt_range=(-45.0, 45.0))
    assert errors == [] and {(e.tilt_min_deg, e.tilt_max_deg) for e in entries} == {(-45.0, 45.0)}


def test_separate_even_odd_sets_are_paired_by_ts_id(tmp_path):
    even = tomogram_set(tmp_path, "even", [_tomogram(t, str(tmp_path / f"even_{t}.mrc"))
                                           for t in ("TS_01", "TS_02", "TS_03")])
    odd = tomogram_set(tmp_path, "odd", [_tomogram(t, str(tmp_path / f"odd_{t}.mrc"))
                                         for t in ("TS_03", "TS_01", "TS_04")])
    even_d, _ = convert.tomograms_by_ts_id(even, "even")
    odd_d, _ = convert.tomograms_by_ts_id(odd, "odd")
    entries, errors = convert.collect_entries(even=even_d, odd=odd_d, halves="required")
    assert any("without an odd partner" in e and "TS_02" in e for e in errors)
    assert any("without an even partner" in e and "TS_04" in e for e in errors)
    paired = {e.ts_id: (e.even, e.odd) for e in entries if e.has_halves}
    assert paired == {"TS_01": (str(tmp_path / "even_TS_01.mrc"), str(tmp_path / "odd_TS_01.mrc")),
                      "TS_03": (str(tmp_path / "even_TS_03.mrc"), str(tmp_path / "odd_TS_03.mrc"))}
    assert all(e.full is None for e in entries)


def test_errors_name_the_items(tmp_path):
    tomos = tomogram_set(tmp_path, "tomos", [
        _tomogram("TS_01", str(tmp_path / "TS_01.mrc")),
        _tomogram("TS_02", str(tmp_path / "TS_02.mrc"), acq=acquisition(50.0, -50.0))])
    full, _ = convert.tomograms_by_ts_id(tomos, "tomograms")
    # Noise2Noise without halves
    _, errors = convert.collect_entries(full=full, halves="required")
    assert any("without even/odd half maps" in e and "TS_01" in e for e in errors)
    # tilt range nonsense in an acquisition, and in the form
    _, errors = convert.collect_entries(full=full)
    assert any("TS_02 (50.0, -50.0, from the acquisition)" in e for e in errors)
    _, errors = convert.collect_entries(full=full, tilt_range=(-60.0, 120.0))
    assert any("tilt range" in e for e in errors)
    # masks must cover every tomogram
    mask = TomoMask(tsId="TS_01")
    mask.setLocation(str(tmp_path / "TS_01_mask.mrc"))
    _, errors = convert.collect_entries(full=full, tilt_range=(-60.0, 60.0),
                                        masks={"TS_01": mask})
    assert any("without a mask" in e and "TS_02" in e for e in errors)
    entries, errors = convert.collect_entries(full={"TS_01": full["TS_01"]},
                                              masks={"TS_01": mask, "TS_09": mask})
    assert errors == [] and entries[0].mask == os.path.abspath(str(tmp_path / "TS_01_mask.mrc"))


def test_read_column_and_merge_columns(tmp_path):
    entries, _ = convert.collect_entries(full={"TS_01": _tomogram("TS_01", "/data/TS_01.mrc")})
    path = convert.write_tomograms_star(entries, tmp_path / "tomograms.star")
    assert convert.read_column(path, star.DECONV) == {"TS_01": None}
    convert.merge_columns(path, {"TS_01": {star.DECONV: "/out/TS_01_deconv.mrc"}})
    assert convert.read_column(path, star.DECONV) == {"TS_01": star.Path("/out/TS_01_deconv.mrc")}
    assert convert.entries_from_signature(convert.entries_signature(entries, a=1)) == entries


def test_import_model_reads_every_architecture_from_the_file_name(tmp_path):
    from isonet2scipion.constants import ARCH_CHOICES
    from isonet2scipion.protocols.protocol_import_model import describeModelFile

    for arch in ARCH_CHOICES:
        info = describeModelFile(str(tmp_path / f"network_isonet2-n2n_{arch}_48_full.pt"))
        assert info["arch"] == arch and info["cube_size"] == 48 and info["method"] == "isonet2-n2n"
    assert describeModelFile(str(tmp_path / "network_n2n_plain-unet-large_96_epoch010.pt"))["arch"] == "plain-unet-large"
