"""Two commands on one STAR file or one output folder (issue 28, items 3 and 4), and the
atomic writes' last details (fsync, SIGTERM, the name in an error).

Real processes meet at deterministic points (``pace.py``: a barrier or a gate just before an
``os.replace``), so every interleaving tested here happens on every run, however fast the
machine.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from reliability_helpers import (
    assert_one_error_line,
    cli_env,
    fingerprint,
    make_checkpoint,
    make_dataset,
    run_main,
    temp_files,
)

from isonet2core.io import atomic, locks, mrcio, star
from isonet2core.io.model_file import ModelFile

HERE = Path(__file__).resolve().parent
PREDICT = ["--device", "cpu", "--ncpus", "1", "--padding_factor", "1.5"]
TRAIN = ["--arch", "unet-small", "--cube_size", "16", "--batch_size", "2", "--number_subtomos", "2",
         "--device", "cpu", "--ncpus", "1", "--mixed_precision", "False", "--learning_rate_min", "1e-4"]
MODEL = "network_isonet2-n2n_unet-small_16"


def paced(spec: dict, argv, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE / "pace.py"), json.dumps(spec), *map(str, argv)],
                            cwd=cwd, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the command ended before {path.name}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def in_process(argv):
    threads = torch.get_num_threads()
    try:
        return run_main(argv)
    finally:
        torch.set_num_threads(threads)


# --- one STAR, three commands ----------------------------------------------------------------
def test_deconv_make_mask_and_predict_on_one_star_at_once_keep_every_column(tmp_path, monkeypatch):
    """All three read the STAR, meet at a barrier before their first map is in place, then
    write their maps one by one: every row ends with all three columns, each naming a complete
    map (before: each command rewrote the table it had read, and the last one won)."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data", n=6)
    model = make_checkpoint(tmp_path / "model.pt")
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    spec = {"match": ".mrc", "barrier": [str(barrier), 3], "delay": 0.1}
    procs = [paced(spec, argv, tmp_path) for argv in (
        ["deconv", ds["star"], "--output_dir", tmp_path / "dc"],
        ["make-mask", ds["star"], "--output_dir", tmp_path / "mm"],
        ["predict", ds["star"], model, "--output_dir", tmp_path / "pr", *PREDICT])]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], results

    table = star.TomogramsTable.read(ds["star"])
    assert len(table) == 6
    for row in range(6):
        for column in (star.DECONV, star.MASK, star.CORRECTED, star.CORRECTED_HALF1, star.CORRECTED_HALF2):
            path = table.path(row, column)
            assert path is not None, f"{table.tomo_name(row)}: {column} lost"
            mrcio.read_mrc(path)           # complete
    for folder in ("dc", "mm", "pr", "data"):
        assert temp_files(tmp_path / folder) == []


def test_an_update_keeps_what_another_command_wrote_since(tmp_path):
    ds = make_dataset(tmp_path, n=2)
    stale = star.TomogramsTable.read(ds["star"])                        # read at a command's start
    star.update_rows(ds["star"], {"t2": {star.MASK: tmp_path / "t2_mask.mrc"}})    # another command
    star.update_rows(ds["star"], {(stale.tomo_name(0), stale.index(0)): {star.DECONV: tmp_path / "t1_deconv.mrc"}})
    table = star.TomogramsTable.read(ds["star"])
    assert table.path(1, star.MASK) == tmp_path / "t2_mask.mrc"
    assert table.path(0, star.DECONV) == tmp_path / "t1_deconv.mrc"
    assert table.value(0, star.MASK) is None and table.value(1, star.DECONV) is None
    assert temp_files(tmp_path) == []                                  # no lock file left either


def test_an_update_of_a_row_that_left_the_star_names_the_star_and_the_row(tmp_path):
    ds = make_dataset(tmp_path, n=2)
    only_t1 = [r for r in star.TomogramsTable.read(ds["star"]).to_records() if r[star.TOMO_NAME] == "t1"]
    star.TomogramsTable.from_records(only_t1).write(ds["star"])
    before = ds["star"].read_bytes()
    with pytest.raises(ValueError, match=rf"{ds['star']} no longer lists tomogram t2; rlnMaskName"):
        star.update_rows(ds["star"], {"t2": {star.MASK: tmp_path / "t2_mask.mrc"}})
    with pytest.raises(ValueError, match="tomogram t1 now has rlnIndex 1, not 2"):
        star.update_rows(ds["star"], {("t1", 2): {star.MASK: tmp_path / "t1_mask.mrc"}})
    assert ds["star"].read_bytes() == before


# --- one output folder, two runs ---------------------------------------------------------------
def test_two_refines_into_one_folder_the_second_is_refused_naming_the_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    out = tmp_path / "run"
    gate = tmp_path / "gate"
    first = paced({"match": ".pt", "gate": str(gate)},
                  ["refine", ds["star"], "--output_dir", out, "--epochs", "1", "--seed", "1", *TRAIN], tmp_path)
    wait_for(Path(f"{gate}.reached"), first)          # epoch 1 trained, its model file not yet in place

    rc, _, err = in_process(["refine", ds["star"], "--output_dir", out, "--epochs", "1", "--seed", "2", *TRAIN])
    assert rc == 2
    line = assert_one_error_line(err, f"output folder {out} is in use by another run", f"pid {first.pid}",
                                 "isonet2 refine")
    assert "--seed 1" in line
    gate.touch()
    assert first.wait(timeout=300) == 0, first.communicate()
    full = ModelFile.load(out / f"{MODEL}_full.pt")
    assert full.config["seed"] == 1                                 # the first run's weights
    assert sorted(p.name for p in out.glob("*.pt")) == [f"{MODEL}_epoch001.pt", f"{MODEL}_full.pt"]
    assert temp_files(out) == []


def test_a_rerun_without_resume_is_refused_and_overwrite_replaces_the_whole_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    out = tmp_path / "run"
    rc, _, err = in_process(["refine", ds["star"], "--output_dir", out, "--epochs", "2",
                             "--save_interval", "1", *TRAIN])
    assert rc == 0, err
    before = fingerprint([out])

    rc, _, err = in_process(["refine", ds["star"], "--output_dir", out, "--epochs", "1", "--seed", "5", *TRAIN])
    assert rc == 2
    assert_one_error_line(err, f"output folder {out} already holds a run", "--resume True", "--overwrite True")
    assert fingerprint([out]) == before

    rc, _, err = in_process(["refine", ds["star"], "--output_dir", out, "--epochs", "1", "--seed", "5",
                             "--overwrite", "True", *TRAIN])
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["config.json", "loss.png", "loss_history.json", f"{MODEL}_epoch001.pt", f"{MODEL}_full.pt"])
    history = json.loads((out / "loss_history.json").read_text())
    assert [h["epoch"] for h in history] == [1]
    assert json.loads((out / "config.json").read_text())["config"]["seed"] == 5
    for name in (f"{MODEL}_epoch001.pt", f"{MODEL}_full.pt"):
        assert ModelFile.load(out / name).config["seed"] == 5


def test_overwrite_refuses_to_remove_the_pretrained_model_it_starts_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    out = tmp_path / "run"
    pretrained = make_checkpoint(out / f"{MODEL}_epoch003.pt")      # not a file the new run writes
    before = fingerprint([out])
    rc, _, err = in_process(["refine", ds["star"], "--output_dir", out, "--epochs", "1", "--overwrite", "True",
                             "--pretrained_model", pretrained, *TRAIN])
    assert rc == 2
    assert_one_error_line(err, f"--overwrite would remove {pretrained}", "input")
    assert fingerprint([out]) == before


def test_two_predicts_of_the_same_names_into_one_folder_the_second_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = make_dataset(tmp_path / "a")
    b = make_dataset(tmp_path / "b")                  # the same tomogram names, t1 and t2
    model = make_checkpoint(tmp_path / "model.pt")
    gate = tmp_path / "gate"
    first = paced({"match": ".mrc", "gate": str(gate)},
                  ["predict", a["star"], model, "--output_dir", tmp_path / "shared", *PREDICT], tmp_path)
    wait_for(Path(f"{gate}.reached"), first)
    b_before = b["star"].read_bytes()

    rc, _, err = in_process(["predict", b["star"], model, "--output_dir", tmp_path / "shared", *PREDICT])
    assert rc == 2
    assert_one_error_line(err, "t1_corrected.mrc is in use by another run", f"pid {first.pid}", "isonet2 predict")
    assert b["star"].read_bytes() == b_before                         # b names no map of a's
    gate.touch()
    assert first.wait(timeout=300) == 0, first.communicate()
    table = star.TomogramsTable.read(a["star"])
    assert [table.path(r, star.CORRECTED).name for r in range(2)] == ["t1_corrected.mrc", "t2_corrected.mrc"]
    assert temp_files(tmp_path / "shared") == []


def test_the_lock_of_a_killed_run_blocks_nobody(tmp_path):
    code = ("import os, signal, sys\nfrom isonet2core.io import locks\n"
            "with locks.run_lock(sys.argv[1]):\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    killed = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    assert (tmp_path / locks.RUN_LOCK).exists()                        # left behind, not held
    with locks.run_lock(tmp_path):
        with pytest.raises(locks.InUseError, match=f"output folder {tmp_path} is in use by another run "
                                                   rf"\(pid {os.getpid()} on host "):
            with locks.run_lock(tmp_path):
                pass
    assert not (tmp_path / locks.RUN_LOCK).exists()                    # the next holder cleaned up


# --- the last details of an atomic write --------------------------------------------------------
def test_sigterm_during_a_write_leaves_no_temporary(tmp_path):
    """SIGTERM (a scheduler's cancel) while predict's first map is complete in its temporary
    but not in place: exit 143, one line, no temporary, no final map, STAR unchanged (before:
    the process died at once and left the temporary)."""
    ds = make_dataset(tmp_path / "data")
    model = make_checkpoint(tmp_path / "model.pt")
    star_before = ds["star"].read_bytes()
    gate = tmp_path / "gate"
    out = tmp_path / "out"
    proc = paced({"match": ".mrc", "gate": str(gate)},
                 ["predict", ds["star"], model, "--output_dir", out, *PREDICT], tmp_path)
    wait_for(Path(f"{gate}.reached"), proc)
    assert len([p for p in temp_files(out) if p.name.endswith(".tmp")]) == 1     # the first map's
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert err.strip() == "isonet2: terminated"
    assert temp_files(out) == [] and not list(out.glob("*.mrc"))
    assert ds["star"].read_bytes() == star_before


def test_an_error_naming_the_temporary_names_the_target(tmp_path):
    target = tmp_path / "out.mrc"
    with pytest.raises(PermissionError) as info:
        with atomic.atomic_output(target) as tmp:
            raise PermissionError(13, "Permission denied", str(tmp))
    assert info.value.filename == str(target) and ".tmp" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_an_atomic_write_is_flushed_then_its_folder(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    atomic.write_text(tmp_path / "t.star", "data_global\n")
    assert len(synced) == 2
    assert Path(synced[0]).name.startswith(".t.star.") and synced[0].endswith(".tmp")   # before the replace
    assert synced[1] == str(tmp_path)                                                   # the rename
