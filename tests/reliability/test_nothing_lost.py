"""Nothing lost: inputs never change, outputs appear only complete, a full disk fails cleanly.

* every command leaves its input maps and model files byte-identical (sha256) and keeps every
  value the STAR already held (it only gains columns);
* atomic writes: no temporary file remains after success or failure, and a write that fails
  half-way (``ENOSPC``) leaves the previous file intact;
* a full disk, simulated by a writer that fails with ``ENOSPC`` half-way through its data (and,
  where this machine lets us mount one, a real 1 MiB tmpfs), fails the command with exit 2 and
  one line naming the problem, and the STAR never points at a missing or partial file.
"""
from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_helpers import (
    PIXEL_A,
    assert_one_error_line,
    files_under,
    fingerprint,
    make_checkpoint,
    make_dataset,
    run_main,
    smooth_volume,
    temp_files,
)

from isonet2core.io import atomic, mrcio, output_guard, star
from isonet2core.io.model_file import ModelFile

ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def _records(path: Path):
    return star.TomogramsTable.read(path).to_records()


def _assert_star_kept(before, after):
    """Every value of the STAR before the command is still there, unchanged."""
    assert len(before) == len(after)
    for old, new in zip(before, after):
        for key, value in old.items():
            assert new.get(key) == value, (key, value, new.get(key))


def _assert_star_points_at_complete_files(star_path: Path):
    table = star.TomogramsTable.read(star_path)
    for row in range(len(table)):
        for column in star.PATH_COLUMNS:
            p = table.path(row, column)
            if p is not None:
                mrcio.check_data(p)   # exists, header and size right, data finite


def test_commands_keep_inputs_and_star_values(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data", full=True)
    model = make_checkpoint(tmp_path / "model.pt", method="isonet2-n2n")
    inputs = [tmp_path / "data" / d for d in ("even", "odd", "full")] + [model]
    before = fingerprint(inputs)
    for argv in (["deconv", ds["star"], "--output_dir", "deconv", "--ncpus", "1"],
                 ["make-mask", ds["star"], "--output_dir", "mask", "--input_column", star.DECONV],
                 ["predict", ds["star"], model, "--output_dir", "pred", "--device", "cpu",
                  "--ncpus", "1", "--padding_factor", "1"]):
        records = _records(ds["star"])
        rc, _, err = run_main(argv)
        assert rc == 0, (argv[0], err)
        assert fingerprint(inputs) == before, f"{argv[0]} modified an input"
        _assert_star_kept(records, _records(ds["star"]))
        _assert_star_points_at_complete_files(ds["star"])
        assert temp_files(tmp_path) == [], f"{argv[0]} left temporary files"
    # the deconvolved maps were an input of make-mask and predict: unchanged by them too
    table = star.TomogramsTable.read(ds["star"])
    assert all(table.value(r, c) for r in range(2) for c in (star.DECONV, star.MASK, star.CORRECTED))


# --- writers failing half-way ---------------------------------------------------------------
def _fail_mrc_writes(monkeypatch, files_before_failure: int) -> None:
    """Make the MRC writer (``mrcio.MRCStream``) of the ``files_before_failure + 1``-th file
    write its header and half of its first block (appended planes or a placed block), then
    fail with ENOSPC."""
    real_init, real_write = mrcio.MRCStream.__init__, mrcio.MRCStream.write
    state = {"n": 0}

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        state["n"] += 1
        self.disk_full = state["n"] > files_before_failure

    real_block = mrcio.MRCStream.write_block

    def fill_disk(self, planes):
        data = np.ascontiguousarray(planes, dtype=np.float32).tobytes()
        self._fh.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write(self, planes):
        if not self.disk_full:
            return real_write(self, planes)
        fill_disk(self, planes)

    def write_block(self, z0, y0, block):       # predict places blocks (y bands)
        if not self.disk_full:
            return real_block(self, z0, y0, block)
        fill_disk(self, block)

    monkeypatch.setattr(mrcio.MRCStream, "__init__", init)
    monkeypatch.setattr(mrcio.MRCStream, "write", write)
    monkeypatch.setattr(mrcio.MRCStream, "write_block", write_block)


def test_write_mrc_failing_half_way_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out" / "map.mrc"
    old = smooth_volume((8, 8, 8), 1)
    mrcio.write_mrc(target, old, PIXEL_A)
    digest = fingerprint([target])
    _fail_mrc_writes(monkeypatch, 0)
    with pytest.raises(OSError, match="map.mrc") as info:
        mrcio.write_mrc(target, smooth_volume((8, 8, 8), 2), PIXEL_A)
    assert info.value.errno == errno.ENOSPC
    assert fingerprint([target]) == digest
    assert temp_files(tmp_path) == []


def test_star_write_failing_half_way_keeps_the_old_file(tmp_path, monkeypatch):
    ds = make_dataset(tmp_path, n=1)
    digest = fingerprint([ds["star"]])
    table = star.TomogramsTable.read(ds["star"])
    table.set_value(0, star.DEFOCUS, 12345.0)
    real_open = open

    class HalfWriter:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, text):
            self.fh.write(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic, "open", lambda *a, **k: HalfWriter(real_open(*a, **k)), raising=False)
    with pytest.raises(OSError, match="tomograms.star"):
        table.write(ds["star"])
    assert fingerprint([ds["star"]]) == digest
    assert temp_files(tmp_path) == []


def test_checkpoint_save_failing_half_way_keeps_the_old_file(tmp_path, monkeypatch):
    path = make_checkpoint(tmp_path / "run" / "model.pt", epoch=1)
    digest = fingerprint([path])
    state = ModelFile.load(path).replace(epoch=2)

    def save(obj, fh, *args, **kwargs):
        fh.write(b"\x80\x02half a pickle")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError, match="model.pt"):
        state.save(path)
    assert fingerprint([path]) == digest
    assert temp_files(tmp_path) == []
    assert ModelFile.load(path).epoch == 1


@pytest.mark.parametrize("command", ["deconv", "make-mask", "predict"])
def test_full_disk_during_a_command_fails_cleanly(command, tmp_path, monkeypatch):
    """The disk fills up while the second tomogram's output is written."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    model = make_checkpoint(tmp_path / "model.pt", method="isonet2")   # one output per tomogram
    before = fingerprint([tmp_path / "data" / "even", tmp_path / "data" / "odd", model])
    argv = {"deconv": ["deconv", ds["star"], "--ncpus", "1"],
            "make-mask": ["make-mask", ds["star"]],
            "predict": ["predict", ds["star"], model, "--device", "cpu", "--ncpus", "1",
                        "--input_column", star.TOMO_HALF1]}[command]
    _fail_mrc_writes(monkeypatch, 1)

    rc, _, err = run_main([*argv, "--output_dir", "out"])

    assert rc == 2
    suffix = {"deconv": "_deconv", "make-mask": "_mask", "predict": "_corrected"}[command]
    assert_one_error_line(err, "no space left on device", f"t2{suffix}.mrc")
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert len(outputs) == 1 and outputs[0].startswith("t1"), outputs   # t1 complete, t2 absent
    assert temp_files(tmp_path / "out") == []
    _assert_star_points_at_complete_files(ds["star"])
    table = star.TomogramsTable.read(ds["star"])
    column = {"deconv": star.DECONV, "make-mask": star.MASK, "predict": star.CORRECTED}[command]
    assert table.value(0, column) is not None and table.value(1, column) is None
    assert fingerprint([tmp_path / "data" / "even", tmp_path / "data" / "odd", model]) == before


@pytest.fixture
def tiny_tmpfs(tmp_path):
    """A real 1 MiB file system (tmpfs), where this machine allows mounting one (root)."""
    mount_point = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount_point.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); the patched-writer "
                    "tests cover the full disk")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)


def test_really_full_disk_during_predict(tmp_path, tiny_tmpfs, monkeypatch):
    """Six 206 KB outputs do not fit in 1 MiB: the sixth write fails with ENOSPC (the check of
    the free space before any work is skipped, as if another program filled the disk later)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(output_guard, "check_free_space", lambda targets, sizes: None)
    ds = make_dataset(tmp_path / "data")
    model = make_checkpoint(tmp_path / "model.pt", method="isonet2-n2n")
    rc, _, err = run_main(["predict", ds["star"], model, "--output_dir", tiny_tmpfs, "--device", "cpu",
                           "--ncpus", "1", "--padding_factor", "1"])
    assert rc == 2
    assert_one_error_line(err, "no space left on device")
    assert temp_files(tiny_tmpfs) == []
    for p in tiny_tmpfs.iterdir():           # what is there is complete
        mrcio.check_data(p)
    _assert_star_points_at_complete_files(ds["star"])
    table = star.TomogramsTable.read(ds["star"])
    assert table.value(0, star.CORRECTED) is not None and table.value(1, star.CORRECTED) is None


def test_predict_that_cannot_fit_is_refused_before_any_work(tmp_path, tiny_tmpfs, monkeypatch):
    """The same six outputs (and the two unweighted predictions of the halves' averages, held
    while they are weighted) on the 1 MiB file system, with the check: refused before the first
    map is written, naming the folder and the sizes; the STAR is unchanged."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    model = make_checkpoint(tmp_path / "model.pt", method="isonet2-n2n")
    before = fingerprint([ds["star"], model, tmp_path / "data" / "even", tmp_path / "data" / "odd"])
    rc, _, err = run_main(["predict", ds["star"], model, "--output_dir", tiny_tmpfs, "--device", "cpu",
                           "--ncpus", "1", "--padding_factor", "1"])
    assert rc == 2
    assert_one_error_line(err, "not enough free space", str(tiny_tmpfs), "1.6 MB", "MB free")
    assert files_under(tiny_tmpfs) == []
    assert fingerprint([ds["star"], model, tmp_path / "data" / "even", tmp_path / "data" / "odd"]) == before


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    target = tmp_path / "map.mrc"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".map.mrc.{dead.pid}.deadbeef.tmp"
    live = tmp_path / f".map.mrc.{os.getpid()}.cafe0000.tmp"
    other = tmp_path / f".other.mrc.{dead.pid}.deadbeef.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"partial")
    mrcio.write_mrc(target, smooth_volume((4, 4, 4), 0), PIXEL_A)
    assert not stale.exists() and live.exists() and other.exists()
