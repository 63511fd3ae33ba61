"""What a command may write (issue 28 items 1, 7, 9; :mod:`isonet2core.io.output_guard`), from the CLI.

Every case: exit 2, one line ``isonet2 <cmd>: error: ...`` naming the file or folder, refused
before any work (the fault matrix's tripwire), every input keeps its sha256, no output written.
"""
from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from reliability_helpers import (
    assert_one_error_line,
    files_under,
    fingerprint,
    make_checkpoint,
    make_dataset,
    run_main,
)
from test_fault_matrix import TRAIN_OPTIONS, _Models, argv_for, tripwire

from isonet2core.io import output_guard, output_names, star

SUFFIX = {"deconv": "_deconv", "make-mask": "_mask", "predict": "_corrected"}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return _Models(tmp_path_factory.mktemp("models"))


def _refused(argv, monkeypatch, *needles) -> str:
    with tripwire(monkeypatch):
        rc, _, err = run_main(argv)
    assert rc == 2, err
    return assert_one_error_line(err, *needles)


def _set(star_path: Path, row: int, column: str, value) -> None:
    table = star.TomogramsTable.read(star_path)
    table.set_value(row, column, str(value))
    table.write(star_path)


def _read_only(path: Path) -> None:
    path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)


@pytest.fixture
def restore_modes():
    """Give back write permission to what a test made read-only (pytest must clean up)."""
    paths = []
    yield paths
    for p in paths:
        if p.exists():
            p.chmod(stat.S_IMODE(p.stat().st_mode) | 0o200)


# --- item 1: an output is never an input -----------------------------------------------------
@pytest.mark.parametrize("role", ["even", "mask", "model"])
def test_prepare_star_never_writes_over_a_map_mask_or_model(role, tmp_path, monkeypatch):
    """``--star_name sim/even/t1.mrc`` (or a mask it lists, or a model file) is refused."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "sim")
    masks = tmp_path / "masks"
    masks.mkdir()
    shutil.copy(ds["even"][0], masks / "t1_mask.mrc")
    model = make_checkpoint(tmp_path / "model.pt")
    target = {"even": ds["even"][0], "mask": masks / "t1_mask.mrc", "model": model}[role]
    before = fingerprint([tmp_path])
    _refused(["prepare-star", "--even", ds["root"] / "even", "--odd", ds["root"] / "odd",
              "--mask_folder", masks, "--star_name", target], monkeypatch, target.name)
    assert fingerprint([tmp_path]) == before


def test_prepare_star_may_rewrite_its_star(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "sim")
    argv = ["prepare-star", "--even", ds["root"] / "even", "--odd", ds["root"] / "odd",
            "--star_name", "t.star"]
    assert run_main(argv)[0] == 0
    assert run_main(argv)[0] == 0
    assert len(star.TomogramsTable.read("t.star")) == 2


@pytest.mark.parametrize("command", ["deconv", "make-mask", "predict"])
def test_no_output_over_another_rows_file(command, tmp_path, models, monkeypatch):
    """Row t1 lists ``out/t2_<suffix>.mrc`` (deconv, make-mask: as its map; predict: as its mask,
    a column predict does not read, with only t2 selected): t2's output would replace it."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    victim = out / f"t2{SUFFIX[command]}.mrc"
    shutil.copy(ds["even"][0], victim)
    _set(ds["star"], 0, star.MASK if command == "predict" else star.TOMO_FULL, victim)
    extra = ("--tomo_idx", "2") if command == "predict" else ()
    before = fingerprint([tmp_path / "data", victim])
    _refused(argv_for(command, ds["star"], out, models, extra), monkeypatch, str(victim), "input")
    assert fingerprint([tmp_path / "data", victim]) == before
    assert files_under(out) == [victim]


def test_deconv_rerun_replaces_its_own_output(tmp_path, models, monkeypatch):
    """The one exception: the cell already naming the very file the command writes."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    for _ in range(2):
        rc, _, err = run_main(argv_for("deconv", ds["star"], tmp_path / "out", models))
        assert rc == 0, err
    assert star.TomogramsTable.read(ds["star"]).path(1, star.DECONV) == tmp_path / "out" / "t2_deconv.mrc"


@pytest.mark.parametrize("command", ["refine", "denoise"])
def test_training_never_writes_over_its_inputs(command, tmp_path, monkeypatch):
    """A half map that is ``out/preview/t1_epoch001.mrc`` (with previews), and a pretrained model
    that is ``out/network_..._full.pt`` (with --overwrite): refused before training."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    out = tmp_path / "out"
    preview = output_names.preview_path(out, "t1", 1)
    preview.parent.mkdir(parents=True)
    shutil.copy(ds["even"][0], preview)
    _set(ds["star"], 0, star.TOMO_HALF1, preview)
    before = fingerprint([tmp_path / "data", preview])
    argv = [command, ds["star"], "--output_dir", out, *TRAIN_OPTIONS]
    _refused([*argv, "--with_preview", "True", "--overwrite", "True"], monkeypatch, str(preview))
    assert fingerprint([tmp_path / "data", preview]) == before

    _set(ds["star"], 0, star.TOMO_HALF1, ds["even"][0])
    method = "n2n" if command == "denoise" else "isonet2-n2n"
    model = make_checkpoint(output_names.model_path(out, method, "unet-small", 16), method=method)
    before = fingerprint([tmp_path / "data", model])
    _refused([*argv, "--pretrained_model", model, "--overwrite", "True"], monkeypatch, model.name)
    assert fingerprint([tmp_path / "data", model]) == before
    assert sorted(files_under(out)) == sorted([preview, model])


# --- item 7: even and odd the same -----------------------------------------------------------
@pytest.mark.parametrize("how", ["same-folder", "identical-copy"])
def test_prepare_star_refuses_even_and_odd_the_same(how, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "sim")
    odd = ds["root"] / "even"
    if how == "identical-copy":
        odd = tmp_path / "copy"
        shutil.copytree(ds["root"] / "even", odd)
    before = fingerprint([tmp_path])
    line = _refused(["prepare-star", "--even", ds["root"] / "even", "--odd", odd,
                     "--star_name", "t.star"], monkeypatch, str(ds["even"][0]), str(odd / "t1.mrc"))
    assert ("same file" if how == "same-folder" else "identical") in line
    assert fingerprint([tmp_path]) == before


@pytest.mark.parametrize("command", ["refine", "denoise", "predict"])
@pytest.mark.parametrize("how", ["same-file", "identical-copy"])
def test_halves_that_are_the_same_are_refused(command, how, tmp_path, models, monkeypatch):
    """Row t2's odd half is its even half (or a byte copy of it): refused naming both."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    odd = ds["even"][1]
    if how == "identical-copy":
        odd = tmp_path / "data" / "copy_t2.mrc"
        shutil.copy(ds["even"][1], odd)
    _set(ds["star"], 1, star.TOMO_HALF2, odd)
    before = fingerprint([tmp_path / "data"])
    out = tmp_path / "out"
    _refused(argv_for(command, ds["star"], out, models), monkeypatch, str(ds["even"][1]), str(odd),
             "even and odd")
    assert fingerprint([tmp_path / "data"]) == before
    assert files_under(out) == []


# --- item 9: permissions and free space before any work ----------------------------------------
@pytest.mark.parametrize("command", ["deconv", "make-mask", "predict", "refine", "denoise"])
def test_read_only_output_folder_is_refused_before_work(command, tmp_path, models, monkeypatch,
                                                         restore_modes):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    out = tmp_path / "out"
    out.mkdir()
    _read_only(out)
    restore_modes.append(out)
    before = fingerprint([tmp_path / "data"])
    _refused(argv_for(command, ds["star"], out, models), monkeypatch, str(out), "read-only")
    assert fingerprint([tmp_path / "data"]) == before
    assert files_under(out) == []


@pytest.mark.parametrize("command", ["deconv", "make-mask", "predict", "refine-with-predict"])
def test_read_only_star_is_refused_before_work(command, tmp_path, models, monkeypatch, restore_modes):
    """The STAR a command updates is read-only: refused before any map is written."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    _read_only(ds["star"])
    restore_modes.append(ds["star"])
    before = fingerprint([tmp_path / "data"])
    out = tmp_path / "out"
    argv = (argv_for("refine", ds["star"], out, models, ("--with_predict", "True"))
            if command == "refine-with-predict" else argv_for(command, ds["star"], out, models))
    _refused(argv, monkeypatch, str(ds["star"]), "read-only")
    assert fingerprint([tmp_path / "data"]) == before
    assert files_under(out) == []


def test_prepare_star_read_only_star_is_refused(tmp_path, monkeypatch, restore_modes):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "sim")
    _read_only(ds["star"])
    restore_modes.append(ds["star"])
    before = fingerprint([tmp_path])
    _refused(["prepare-star", "--even", ds["root"] / "even", "--odd", ds["root"] / "odd",
              "--star_name", ds["star"], "--create_average", "True"], monkeypatch, str(ds["star"]))
    assert fingerprint([tmp_path]) == before
    assert not (tmp_path / "sim" / "full_average").exists()


@pytest.mark.parametrize("command", ["deconv", "make-mask", "predict", "prepare-star"])
def test_outputs_that_do_not_fit_are_refused_before_work(command, tmp_path, models, monkeypatch):
    """The file system has 100 kB free: two maps of 205 kB (prepare-star: the averages) are refused,
    naming the folder, the bytes needed and the bytes free."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(output_guard.shutil, "disk_usage",
                        lambda path: usage._replace(free=100_000))
    before = fingerprint([tmp_path / "data"])
    out = tmp_path / "out"
    if command == "prepare-star":
        argv = ["prepare-star", "--even", ds["root"] / "even", "--odd", ds["root"] / "odd",
                "--star_name", out / "t.star", "--create_average", "True"]
        folder = out / "full_average"
    else:
        argv, folder = argv_for(command, ds["star"], out, models), out
    line = _refused(argv, monkeypatch, f"not enough free space in {folder}", "0.1 MB free")
    assert " MB, " in line
    assert fingerprint([tmp_path / "data"]) == before
    assert files_under(out) == []


def test_write_probe_leaves_nothing(tmp_path):
    output_guard.check_folder_writable(tmp_path / "a" / "b")
    assert os.listdir(tmp_path / "a" / "b") == []
