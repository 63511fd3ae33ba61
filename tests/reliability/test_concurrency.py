"""Concurrency at the core level: two ``isonet2 predict`` processes writing into one output
folder at the same time, from different STAR files, do not clobber each other's outputs, their
temporary files or their STAR files."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch
from reliability_helpers import cli_env, make_checkpoint, make_dataset, run_main, temp_files

from isonet2core.io import mrcio, star


def test_two_predicts_into_one_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a = make_dataset(tmp_path / "a")
    b = make_dataset(tmp_path / "b", n=3)
    # b lists t3 only (t1/t2 of b would be the same output names as a's: another case)
    table = star.TomogramsTable.from_records([r for r in star.TomogramsTable.read(b["star"]).to_records()
                                             if r[star.TOMO_NAME] == "t3"])
    table.write(b["star"])
    model = make_checkpoint(tmp_path / "model.pt", method="isonet2-n2n")
    options = ["--device", "cpu", "--ncpus", "1", "--padding_factor", "1.5"]

    procs = [subprocess.Popen([sys.executable, "-m", "isonet2core", "predict", str(ds["star"]), str(model),
                               "--output_dir", str(tmp_path / "shared"), *options],
                              env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for ds in (a, b)]
    results = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results

    names = sorted(p.name for p in (tmp_path / "shared").iterdir())
    assert names == sorted(f"t{i}_corrected{s}.mrc" for i in (1, 2, 3) for s in ("", "_half1", "_half2"))
    assert temp_files(tmp_path / "shared") == []
    # each STAR registers its own tomograms, and each output equals a run on its own
    threads = torch.get_num_threads()
    try:
        for ds, tomos in ((a, ("t1", "t2")), (b, ("t3",))):
            got = star.TomogramsTable.read(ds["star"])
            assert [got.tomo_name(r) for r in range(len(got))] == list(tomos)
            alone = tmp_path / f"alone_{ds['root'].name}"
            copy = alone / "tomograms.star"
            alone.mkdir()
            copy.write_bytes(ds["star"].read_bytes())
            rc, _, err = run_main(["predict", copy, model, "--output_dir", alone / "out", *options])
            assert rc == 0, err
            for row, name in enumerate(tomos):
                shared = got.path(row, star.CORRECTED)
                assert shared.parent == tmp_path / "shared" and shared.name == f"{name}_corrected.mrc"
                np.testing.assert_array_equal(mrcio.read_mrc(shared)[0],
                                              mrcio.read_mrc(alone / "out" / shared.name)[0])
    finally:
        torch.set_num_threads(threads)
