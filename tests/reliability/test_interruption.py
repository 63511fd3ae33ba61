"""Interrupted work: a killed command leaves only complete files, and a rerun / resume finishes it.

Kills are SIGKILL (nothing can be cleaned up), placed deterministically at file operations by
``killpoint.py`` (before the N-th ``os.replace`` or in the middle of writing an MRC file's data)
or, for training, right after a given epoch's checkpoint is in place.
"""
from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_helpers import cli_env, fingerprint, make_checkpoint, make_dataset, run_main, temp_files

from isonet2core.io import mrcio, star

HERE = Path(__file__).resolve().parent
OUTPUT_COLUMNS = (star.CORRECTED, star.CORRECTED_HALF1, star.CORRECTED_HALF2)


def run_killed(kind: str, n: int, argv, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / "killpoint.py"), kind, str(n), *map(str, argv)],
                          cwd=cwd, env=cli_env(), capture_output=True, text=True, timeout=300)


def _check_only_complete_outputs(out: Path, star_path: Path, reference: dict) -> dict:
    """Every final-named MRC in ``out`` equals the uninterrupted run's; every STAR entry points
    at such a file. Returns {name: present}."""
    present = {}
    for path in sorted(out.glob("*.mrc")):
        data, voxel = mrcio.read_mrc(path)   # a partial file would fail the header/size check
        np.testing.assert_array_equal(data, reference[path.name], err_msg=path.name)
        present[path.name] = True
    table = star.TomogramsTable.read(star_path)
    for row in range(len(table)):
        for column in OUTPUT_COLUMNS:
            p = table.path(row, column)
            if p is not None:
                assert p.name in present, f"STAR entry {column}={p} has no complete file"
    return present


def test_killed_predict_leaves_complete_files_and_a_rerun_completes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    model = make_checkpoint(tmp_path / "model.pt", method="isonet2-n2n")
    shutil.copy(ds["star"], tmp_path / "reference.star")
    options = ["--device", "cpu", "--ncpus", "1", "--padding_factor", "1.5"]
    threads = torch.get_num_threads()
    try:
        rc, _, err = run_main(["predict", tmp_path / "reference.star", model,
                               "--output_dir", tmp_path / "reference", *options])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0, err
    reference = {p.name: mrcio.read_mrc(p)[0] for p in (tmp_path / "reference").glob("*.mrc")}
    assert len(reference) == 6          # 2 tomograms x (half1, half2, average)
    inputs = fingerprint([ds["even"][0].parent, ds["odd"][0].parent, model])
    star_before = ds["star"].read_bytes()

    out = tmp_path / "out"
    argv = ["predict", ds["star"], model, "--output_dir", out, *options]
    # os.replace order: t1 half1, half2, the unweighted prediction of their average (a hidden
    # scratch), the weighted average, STAR, then the same for t2; MRC writes in that order too
    for kind, n, expect_present in (("write", 1, 0),      # mid-write of the first file
                                    ("write", 3, 2),      # rerun: mid-write of t1's scratch
                                    ("replace", 5, 3),    # t1 written, STAR not yet updated
                                    ("write", 6, 4)):     # rerun: mid-write of t2's second half
        result = run_killed(kind, n, argv, tmp_path)
        assert result.returncode == -signal.SIGKILL, result.stderr
        present = _check_only_complete_outputs(out, ds["star"], reference)
        assert len(present) == expect_present, (kind, n, sorted(present))
        assert fingerprint([ds["even"][0].parent, ds["odd"][0].parent, model]) == inputs
    table = star.TomogramsTable.read(ds["star"])
    assert table.value(1, star.CORRECTED) is None   # t2 never registered while incomplete
    assert table.value(0, star.CORRECTED) is not None

    rc, _, err = run_main(argv)       # the rerun finishes the job
    torch.set_num_threads(threads)
    assert rc == 0, err
    present = _check_only_complete_outputs(out, ds["star"], reference)
    assert sorted(present) == sorted(reference)
    table = star.TomogramsTable.read(ds["star"])
    for row in range(2):
        for column in OUTPUT_COLUMNS:
            assert table.path(row, column).is_file()
    assert star_before != ds["star"].read_bytes()
    assert temp_files(out) == [], "temporary files of the killed runs were left behind"
    assert fingerprint([ds["even"][0].parent, ds["odd"][0].parent, model]) == inputs


TRAIN = ["--arch", "unet-small", "--cube_size", "16", "--epochs", "2", "--batch_size", "2",
         "--number_subtomos", "2", "--device", "cpu", "--ncpus", "1", "--mixed_precision", "False",
         "--seed", "3", "--learning_rate_min", "1e-4"]


def _load(path: Path):
    from isonet2core.io.model_file import ModelFile
    return ModelFile.load(path)


def _every_model_file_is_complete(out: Path) -> None:
    for p in out.glob("*.pt"):
        _load(p)          # a partial file would not load


@pytest.mark.parametrize("command, method", [
    ("refine", "isonet2-n2n"),
    pytest.param("denoise", "n2n", marks=pytest.mark.slow),   # the same code path; ~20 s more
])
def test_killed_training_resumes_to_the_uninterrupted_weights(command, method, tmp_path, monkeypatch):
    """SIGKILL in the middle of epoch 2, then again while epoch 2's model file is being put in
    place; ``--resume True`` twice: the run finishes with the same weights and loss history
    as an uninterrupted run with the same seed (bit-identical on the CPU, as the trainer
    promises), and the inputs are untouched."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    inputs = fingerprint([tmp_path / "data"])
    threads = torch.get_num_threads()
    try:
        rc, _, err = run_main([command, ds["star"], "--output_dir", tmp_path / "straight", *TRAIN])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0, err
    name = f"network_{method}_unet-small_16_full.pt"
    straight = _load(tmp_path / "straight" / name)

    out = tmp_path / "run"
    argv = [command, ds["star"], "--output_dir", out, *TRAIN]
    # 4 cubes per epoch, batch 2: 2 steps per epoch; the 4th step is in the middle of epoch 2
    result = run_killed("step", 4, argv, tmp_path)
    assert result.returncode == -signal.SIGKILL, result.stderr
    _every_model_file_is_complete(out)
    assert _load(out / name).epoch == 1
    assert [h["epoch"] for h in _load(out / name).history] == [1]

    # resumed, then killed just before epoch 2's model file replaces epoch 1's
    result = run_killed(f"replace:{name}", 1, [*argv, "--resume", "True"], tmp_path)
    assert result.returncode == -signal.SIGKILL, result.stderr
    _every_model_file_is_complete(out)
    assert _load(out / name).epoch == 1          # the old file is intact

    rc, _, err = run_main([*argv, "--resume", "True"])
    torch.set_num_threads(threads)
    assert rc == 0, err
    final = _load(out / name)
    assert final.epoch == 2
    assert [h["epoch"] for h in final.history] == [1, 2]
    assert [h["loss"] for h in final.history] == [h["loss"] for h in straight.history]
    assert final.model_state.keys() == straight.model_state.keys()
    for key, value in straight.model_state.items():
        assert torch.equal(final.model_state[key], value), key
    assert temp_files(out) == [], "temporary files of the killed runs were left behind"
    assert fingerprint([tmp_path / "data"]) == inputs
