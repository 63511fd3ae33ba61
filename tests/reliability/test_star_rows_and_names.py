"""Issue 28 items 5, 6 and 8: a ragged STAR row, a STAR without defocus for CTF work, and two
tomogram names that one file-name rule would merge. Each is refused (exit 2, one error line
naming the file and what is wrong, inputs unchanged, nothing written) or kept apart."""
from __future__ import annotations

import re

import pytest
from reliability_helpers import (
    ARCH,
    CUBE,
    assert_one_error_line,
    files_under,
    fingerprint,
    make_checkpoint,
    make_dataset,
    run_main,
)

from isonet2core.io import star


def _truncate_after_pixel_size(star_path):
    """Cut the STAR text in the middle of its second row, after that row's pixel size (as an
    interrupted copy or a hand edit would): the row is shorter than the table."""
    lines = star_path.read_text().splitlines()
    columns = [line.split()[0][1:] for line in lines if line.startswith("_rln")]
    rows = [i for i, line in enumerate(lines) if line.strip() and not line.startswith(("_", "data_", "loop_", "#"))]
    keep = columns.index(star.PIXEL_SIZE) + 1
    lines[rows[1]] = " ".join(lines[rows[1]].split()[:keep])
    star_path.write_text("\n".join(lines[: rows[1] + 1]) + "\n")
    return len(columns), keep, rows[1] + 1


@pytest.mark.parametrize("command", ["deconv", "make-mask", "predict", "refine"])
def test_a_truncated_star_row_is_refused_naming_the_line(command, tmp_path):
    ds = make_dataset(tmp_path / "d")
    n_columns, kept, line = _truncate_after_pixel_size(ds["star"])
    before = fingerprint([ds["star"], *ds["even"], *ds["odd"]])
    out = tmp_path / "out"
    argv = {"deconv": ["deconv", ds["star"], "--output_dir", out],
            "make-mask": ["make-mask", ds["star"], "--output_dir", out],
            "predict": ["predict", ds["star"], make_checkpoint(tmp_path / "m.pt"), "--output_dir", out,
                        "--device", "cpu"],
            "refine": ["refine", ds["star"], "--output_dir", out, "--arch", ARCH, "--cube_size", str(CUBE),
                       "--epochs", "1", "--device", "cpu"]}[command]
    rc, _, err = run_main([str(a) for a in argv])
    assert rc == 2
    assert_one_error_line(err, str(ds["star"]), f"line {line}", f"{kept} field(s)", f"{n_columns} columns")
    assert fingerprint([ds["star"], *ds["even"], *ds["odd"]]) == before
    assert files_under(out) == []


def test_quoted_empty_cells_are_fields_not_gaps(tmp_path):
    """A row with RELION's empty token ``""`` has all its fields: read as before."""
    ds = make_dataset(tmp_path / "d")
    table = star.TomogramsTable.read(ds["star"])
    table.set_value(0, star.DEFOCUS, None)          # one empty cell: written as ""
    table.write(ds["star"])
    assert '""' in ds["star"].read_text()
    again = star.TomogramsTable.read(ds["star"])
    assert again.value(0, star.DEFOCUS) is None and again.value(1, star.DEFOCUS) == 20000.0


def _without_defocus(ds):
    table = star.TomogramsTable.read(ds["star"])
    records = [{k: v for k, v in r.items() if k != star.DEFOCUS} for r in table.to_records()]
    star.TomogramsTable.from_records(records).write(ds["star"])
    assert star.DEFOCUS not in ds["star"].read_text()


@pytest.mark.parametrize("case", ["deconv", "refine-network", "predict-phaseflip"])
def test_ctf_work_without_a_defocus_column_is_refused(case, tmp_path):
    """A RELION-5 tomograms.star has no rlnDefocus: CTF work on it named the missing column and
    the option that fills it, instead of using 10000 A."""
    ds = make_dataset(tmp_path / "d")
    _without_defocus(ds)
    before = fingerprint([ds["star"], *ds["even"], *ds["odd"]])
    out = tmp_path / "out"
    if case == "deconv":
        argv, needs = ["deconv", ds["star"], "--output_dir", out], "deconv needs the defocus"
    elif case == "refine-network":
        argv = ["refine", ds["star"], "--output_dir", out, "--arch", ARCH, "--cube_size", str(CUBE),
                "--epochs", "1", "--device", "cpu", "--CTF_mode", "network"]
        needs = "CTF_mode network needs the defocus"
    else:
        from isonet2core.config import TrainConfig, to_dict
        from isonet2core.io.model_file import ModelFile
        model = make_checkpoint(tmp_path / "m.pt")
        ModelFile.load(model).replace(config=to_dict(TrainConfig(arch=ARCH, cube_size=CUBE, ctf_mode="phase_only"))).save(model)
        argv, needs = ["predict", ds["star"], model, "--output_dir", out, "--device", "cpu"], "phase flip"
    rc, _, err = run_main([str(a) for a in argv])
    assert rc == 2
    line = assert_one_error_line(err, str(ds["star"]), "tomogram t1", needs, "rlnDefocus is not in the file",
                                 "prepare-star --defocus")
    assert "10000" not in line
    assert fingerprint([ds["star"], *ds["even"], *ds["odd"]]) == before
    assert files_under(out) == []


def test_work_without_ctf_still_runs_without_defocus(tmp_path):
    """make-mask (and training or predicting without CTF) never needed the defocus."""
    ds = make_dataset(tmp_path / "d")
    _without_defocus(ds)
    rc, _, err = run_main(["make-mask", str(ds["star"]), "--output_dir", str(tmp_path / "m")])
    assert rc == 0, err
    assert star.TomogramsTable.read(ds["star"]).value(1, star.MASK) is not None


def test_report_keeps_names_that_one_file_name_rule_would_merge(tmp_path):
    """tomo_α / tomo_β (and "tomo a" / tomo_a) became the same file stem: the report showed the
    second tomogram twice, predict wrote one file for both."""
    ds = make_dataset(tmp_path / "d", n=4)
    table = star.TomogramsTable.read(ds["star"])
    names = ["tomo_α", "tomo_β", "tomo a", "tomo_a"]
    records = table.to_records()
    for rec, name in zip(records, names):
        rec[star.TOMO_NAME] = name
    star.TomogramsTable.from_records(records).write(ds["star"])
    rc, _, err = run_main(["report", str(ds["star"]), "--output_dir", str(tmp_path / "r")])
    assert rc == 0, err
    page = (tmp_path / "r" / "report.html").read_text()
    images = re.findall(r'<img src="([^"]+)_orthoslices.png"', page)
    assert len(images) == 4 and len(set(images)) == 4, images
    assert "tomo_a_orthoslices.png" in [p.name for p in (tmp_path / "r").iterdir()]
    rc, _, err = run_main(["predict", str(ds["star"]), str(make_checkpoint(tmp_path / "m.pt")),
                           "--output_dir", str(tmp_path / "p"), "--device", "cpu", "--padding_factor", "1"])
    assert rc == 0, err
    got = star.TomogramsTable.read(ds["star"])
    outputs = [got.value(r, star.CORRECTED) for r in range(4)]
    assert len(set(outputs)) == 4, outputs
