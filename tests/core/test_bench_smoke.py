"""Smoke test of the benchmark entry point (``python -m bench --quick``): it runs end to end on
tiny sizes and writes its three result files with the sections filled. Benchmarks never gate
on speed; this only keeps ``bench/`` from rotting. The quality section (training runs of a
few seconds) and the profiles are left out to keep the test short; ``bench.quality.evaluate``
is checked on known inputs instead."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

bench_main = pytest.importorskip("bench.__main__")


def test_quick_run_writes_results(tmp_path):
    out = tmp_path / "results"
    rc = bench_main.main(["--quick", "--sections", "flops,train,predict", "--out", str(out),
                          "--workdir", str(tmp_path / "work")])
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    assert results["machine"]["torch"]
    assert results["flops"]["matmul_gflops"] > 0
    config = results["train"]["configs"][0]
    assert config["status"] == "ok", config
    assert config["step_s"] > 0 and config["bare_forward_backward_s"] > 0
    assert abs(sum(config["split_s"][k] for k in config["split_fraction"]) - config["step_s"]) < 1e-3
    sizes = results["predict"]["sizes"]
    assert all(s["status"] == "ok" for s in sizes), sizes
    assert results["predict"]["time_exponent"] is not None
    md = (out / "results.md").read_text()
    assert "| unet-small | 16 |" in md
    assert (out / "README-performance.md").read_text().startswith("## Performance")


def test_quality_evaluate_known_values():
    quality = pytest.importorskip("bench.quality")
    pytest.importorskip("isonet2core.imaging.metrics")
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((32, 32, 32)).astype(np.float32)
    same = quality.evaluate(truth, truth, pixel_size_a=10.0, tilt_min_deg=-60.0, tilt_max_deg=60.0)
    noisy = quality.evaluate(truth + rng.standard_normal(truth.shape).astype(np.float32), truth,
                             pixel_size_a=10.0, tilt_min_deg=-60.0, tilt_max_deg=60.0)
    assert same["pearson"] == pytest.approx(1.0, abs=1e-4)
    assert same["wedge_fsc_mean"] == pytest.approx(1.0, abs=1e-3)
    assert noisy["pearson"] == pytest.approx(1 / np.sqrt(2), abs=0.02)
    assert noisy["wedge_fsc_mean"] < 0.9


def test_an_external_lamella_is_read_as_our_lamellae_are(tmp_path):
    """bench.side_by_side --geometries dir:FOLDER (shared/data/lamella-s1's layout): the maps are
    linked as the commands read folders, the acquisition comes from params.json, and the truth
    (protein bright there) is negated to the tomograms' dark contrast."""
    side_by_side = pytest.importorskip("bench.side_by_side")
    from isonet2core.io import mrcio
    source = tmp_path / "s9"
    rng = np.random.default_rng(0)
    gt = rng.standard_normal((16, 24, 24)).astype(np.float32)
    for name, vol in (("gt.mrc", gt), ("tomo_full.mrc", -gt + 0.3 * rng.standard_normal(gt.shape)),
                      ("tomo_even.mrc", -gt), ("tomo_odd.mrc", -gt)):
        mrcio.write_mrc(source / name, vol, 8.0)
    (source / "params.json").write_text(json.dumps({
        "pixel_size_A": 8.0, "defocus_A": 30000.0, "voltage_kV": 300.0, "cs_mm": 2.7,
        "amplitude_contrast": 0.1, "tilt_min_deg": -60.0, "tilt_max_deg": 60.0}))
    data = side_by_side.external_data(source, tmp_path / "cache")
    assert data["acq"]["defocus_a"] == 30000.0 and data["acq"]["tilt_max_deg"] == 60.0
    assert (data["folder"] / "even" / "tomo_001.mrc").resolve() == (source / "tomo_even.mrc").resolve()
    scores = side_by_side.score(data["full"], data["truth"], 8.0, -60.0, 60.0)
    assert scores["pearson"] > 0.9
    assert side_by_side.external_data(source, tmp_path / "cache")["folder"] == data["folder"]   # reused


def test_memory_scale_trains_and_predicts_on_halves(tmp_path):
    """bench.memory_scale on a tiny tomogram: make-mask, refine (one epoch on even/odd halves,
    with the mask) and predict with its model each give a row with a peak; refine's row gives
    the network's size; the rows of another label already in the results are kept; predict of
    the map alone (--predict_input full) adds its own row."""
    memory_scale = pytest.importorskip("bench.memory_scale")
    from isonet2core.io import mrcio
    out = tmp_path / "results"
    out.mkdir()
    other = {"label": "other", "size": "1x1x1", "dtype": "float32", "sparse": False, "input_bytes": 1028,
             "step": "deconv", "memory_gb": None, "rc": 0, "seconds": 1.0, "max_rss_bytes": 2**20, "command": "-"}
    (out / f"memory_scale_{memory_scale.DATE}.json").write_text(json.dumps({"rows": [other]}))
    rc = memory_scale.main(["--sizes", "16x32x32", "--cube_size", "16", "--steps", "predict,make-mask,refine",
                            "--work", str(tmp_path / "work"), "--out", str(out), "--label", "t"])
    assert rc == 0
    rows = json.loads((out / f"memory_scale_{memory_scale.DATE}.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["other", "t", "t", "t"]
    assert [r["step"] for r in rows[1:]] == ["make-mask", "refine", "predict"]   # in the steps' order
    assert all(r["rc"] == 0 and r["max_rss_bytes"] > 0 and r["seconds"] > 0 for r in rows[1:])
    refine = rows[2]
    assert refine["mask"] is True and refine["cube_size"] == 16
    assert refine["network_bytes"] == memory_scale.network_bytes() > 0
    md = (out / f"memory_scale_{memory_scale.DATE}.md").read_text()
    assert "| t | 16x32x32 | float32 |" in md and "refine (cube 16, mask)" in md and "| other |" in md
    assert "predict (halves)" in md
    # predict of the map alone, with the model the run above left: a row of its own beside the halves'
    rc = memory_scale.main(["--sizes", "16x32x32", "--cube_size", "16", "--steps", "predict", "--predict_input",
                            "full", "--work", str(tmp_path / "work"), "--out", str(out), "--label", "t"])
    assert rc == 0
    rows = json.loads((out / f"memory_scale_{memory_scale.DATE}.json").read_text())["rows"]
    assert [r.get("predict_input") for r in rows if r["step"] == "predict"] == ["halves", "full"]
    assert "predict (full map)" in (out / f"memory_scale_{memory_scale.DATE}.md").read_text()
    tomograms = tmp_path / "work" / "tomograms"
    full, even, odd = (mrcio.read_mrc(tomograms / f"16x32x32{s}.mrc")[0] for s in ("", "_even", "_odd"))
    assert not np.allclose(even, odd)
    assert np.corrcoef((even - full).ravel(), (odd - full).ravel())[0, 1] == pytest.approx(0.0, abs=0.05)
    assert np.std(even - full) == pytest.approx(np.std(full), rel=0.1)


def test_gpu_busy_profiles_two_steps_on_the_cpu(tmp_path):
    """bench.gpu_busy at unit size on the CPU (issue 31): two training steps profiled, the
    busy fraction (torch operators' time over wall time there) between 0 and 1, the table
    written; the interval union counts overlaps once."""
    import torch
    gpu_busy = pytest.importorskip("bench.gpu_busy")
    assert gpu_busy.union_seconds([(0, 2), (1, 3), (5, 6), (5.5, 5.7)]) == pytest.approx(4.0)
    threads = torch.get_num_threads()
    try:
        row = gpu_busy.measure(arch="unet-small", cube=16, batch=1, device="cpu", warmup=1, steps=2,
                               workdir=tmp_path / "work", threads=1)
    finally:
        torch.set_num_threads(threads)
    assert row["batch"] == 1 and row["steps"] >= 2 and row["step_s"] > 0
    assert 0 < row["busy_fraction"] <= 1.0 and 0 < row["busy_fraction_unprofiled"] <= 1.0
    assert row["kernel_sum_s_per_step"] > 0 and row["top_ops"]
    gpu_busy.write(tmp_path / "busy.json", [row, {"arch": "unet-large", "cube": 512, "batch": 64, "error": "oom"}])
    md = (tmp_path / "busy.md").read_text()
    assert "| unet-small | 16 | 1 | float32 | cpu |" in md and "| unet-large | 512 | 64 | - | - | oom |" in md


def test_fit_search_doubles_then_bisects():
    """bench.fit_search.largest: doubling while a size fits, then bisection in quanta."""
    fit_search = pytest.importorskip("bench.fit_search")
    tried = []

    def fits(v):
        tried.append(v)
        return v <= 200
    assert fit_search.largest(fits, 16, 1024, quantum=16, refine=2) == (192, 224)
    assert tried == [16, 32, 64, 128, 256, 192, 224]
    assert fit_search.largest(lambda v: True, 4, 20) == (16, None)
    assert fit_search.largest(lambda v: False, 4, 20, refine=3) == (None, 4)


def test_peers_budget_and_command_mapping(tmp_path):
    """bench.peers' pure logic: DeepDeWedge's missing-wedge width from the tilt range, its epochs
    for our budget of 224 optimiser steps (whole epochs of ceil(N / batch) steps, the fewest that
    reach it), its config.yaml (gpu only for fit-model, the last epoch's checkpoint kept), and
    how a peer's program or python is started."""
    peers = pytest.importorskip("bench.peers")
    assert peers.mw_angle({"tilt_min_deg": -60.0, "tilt_max_deg": 60.0}) == 60.0
    assert peers.mw_angle({"tilt_min_deg": -54.0, "tilt_max_deg": 66.0}) == 60.0
    assert peers.ddw_steps_per_epoch(44, 4) == 11 and peers.ddw_steps_per_epoch(45, 4) == 12
    assert peers.ddw_epochs_for_budget(44, 4) == 21          # 231 steps: 20 epochs would be 220 < 224
    assert peers.ddw_epochs_for_budget(896, 4) == 1 and peers.ddw_epochs_for_budget(3, 4, 10) == 10
    with pytest.raises(ValueError):
        peers.ddw_epochs_for_budget(0, 4)
    cfg = peers.ddw_config(peers.DdwSettings(), Path("e.mrc"), Path("o.mrc"),
                           {"tilt_min_deg": -60.0, "tilt_max_deg": 60.0}, tmp_path, epochs=21)
    assert cfg["shared"]["mw_angle"] == 60 and cfg["shared"]["subtomo_size"] == 48
    assert cfg["shared"]["tomo0_files"] == ["e.mrc"] and cfg["shared"]["standardize_full_tomos"] is True
    assert "gpu" not in cfg["shared"] and "gpu" not in cfg["refine_tomogram"] and cfg["fit_model"]["gpu"] == [0]
    fit = cfg["fit_model"]
    assert (fit["num_epochs"], fit["save_model_every_n_epochs"], fit["batch_size"]) == (21, 21, 4)
    assert fit["unet_params_dict"] == {"chans": 64, "num_downsample_layers": 3, "drop_prob": 0.0}
    assert cfg["prepare_data"]["subtomo_extraction_strides"] == [24, 24, 24]
    assert cfg["refine_tomogram"]["recompute_normalization"] is False   # 68-voxel cubes of a 64-thick lamella
    assert peers.program_prefix("/v/bin/python", "topaz.commands.denoise3d", ["denoise3d"]) == [
        "/v/bin/python", "-m", "topaz.commands.denoise3d"]
    assert peers.program_prefix("/v/bin/topaz", "topaz.commands.denoise3d", ["denoise3d"]) == [
        "/v/bin/topaz", "denoise3d"]
    assert peers.program_prefix(None, "ddw.app", []) is None
    assert peers.default_program(tmp_path / "absent", tmp_path) == str(tmp_path)
    a = peers.build_parser().parse_args(["--ddw-epochs", "7", "--ddw-python", "/p/python"])
    assert (a.ddw_epochs, a.ddw_python, a.budget_steps) == (7, "/p/python", 224)


def test_peers_rows_are_skipped_without_their_programs(tmp_path, monkeypatch, caplog):
    """python -m bench.peers with neither peer's environment: the raw map's row only, and a line
    for each peer saying why its rows are skipped."""
    peers = pytest.importorskip("bench.peers")
    from isonet2core.io import mrcio
    source = tmp_path / "s9"
    rng = np.random.default_rng(0)
    gt = rng.standard_normal((16, 24, 24)).astype(np.float32)
    for name, vol in (("gt.mrc", gt), ("tomo_full.mrc", -gt), ("tomo_even.mrc", -gt), ("tomo_odd.mrc", -gt)):
        mrcio.write_mrc(source / name, vol, 8.0)
    (source / "params.json").write_text(json.dumps({
        "pixel_size_A": 8.0, "defocus_A": 30000.0, "voltage_kV": 300.0, "cs_mm": 2.7,
        "amplitude_contrast": 0.1, "tilt_min_deg": -60.0, "tilt_max_deg": 60.0}))
    monkeypatch.setattr(peers, "PEERS", tmp_path / "no-peers")
    caplog.set_level("INFO", logger="bench.peers")
    assert peers.main(["--lamella", str(source), "--out", str(tmp_path / "out")]) == 0
    rows = json.loads((tmp_path / "out" / "peers.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["raw (full map)"] and rows[0]["scores"]["pearson"] > 0.99
    assert "ddw rows skipped" in caplog.text and "topaz rows skipped" in caplog.text
    assert "| raw (full map) | - |" in (tmp_path / "out" / "peers.md").read_text()


def test_peers_run_on_our_simulators_cached_lamella(tmp_path, monkeypatch):
    """python -m bench.peers --geometry pm60 --data DIR: the side-by-side bench's cached lamella of
    our simulator (its layout, its truth unnegated: protein dark like the tomograms) is what the
    peers get and what their maps are scored against; no --lamella needed."""
    peers = pytest.importorskip("bench.peers")
    from isonet2core.io import mrcio
    folder = tmp_path / "data" / "pm60_16x24x24_seed0"
    rng = np.random.default_rng(1)
    gt = rng.standard_normal((16, 24, 24)).astype(np.float32)
    for half, vol in (("ground_truth", gt), ("full", gt), ("even", gt), ("odd", -gt)):
        mrcio.write_mrc(folder / half / "tomo_001.mrc", vol, 8.0)
    (folder / "acquisition.json").write_text(json.dumps({
        "pixel_size_a": 8.0, "voltage_kv": 300.0, "cs_mm": 2.7, "amplitude_contrast": 0.07,
        "tilt_min_deg": -60.0, "tilt_max_deg": 60.0, "config": {"defocus_a": 30000.0}}))
    monkeypatch.setattr(peers, "PEERS", tmp_path / "no-peers")
    out = tmp_path / "out"
    assert peers.main(["--geometry", "pm60", "--shape", "16x24x24", "--data", str(tmp_path / "data"),
                       "--out", str(out)]) == 0
    report = json.loads((out / "peers.json").read_text())
    assert report["header"]["lamella"] == "pm60"
    assert report["rows"][0]["scores"]["pearson"] > 0.99        # the full map is the truth, same sign
    with pytest.raises(SystemExit):
        peers.main(["--geometry", "pm61", "--out", str(out)])


def test_checkpoint_copier_keeps_every_version_of_a_rewritten_file(tmp_path):
    """bench.side_by_side.CheckpointCopier (the official curve: the program overwrites its model
    each epoch): each version written in place is copied once, complete, in order, and its time
    is on the clock of the official timing log (perf_counter), between the writes around it."""
    import threading
    import time

    from bench.side_by_side import CheckpointCopier, _official_step_times

    model = tmp_path / "maps" / "network.pt"
    model.parent.mkdir()
    spans = []      # (before the open, after the close) of each version on the perf_counter clock

    # A version stays half-written for 0.05 s and settle_s is 1 s: only a stall of the writer
    # longer than 0.95 s (none on a loaded 2-core runner so far; 0.3 s was too tight there) could
    # let the copier take a half-written file.
    def writer():
        for k in range(3):
            before = time.perf_counter()
            with open(model, "wb") as fh:          # in place, in two parts, as torch.save may
                fh.write(bytes([k]) * 1000)
                fh.flush()
                time.sleep(0.05)
                fh.write(bytes([k]) * 1000)
            spans.append((before, time.perf_counter()))
            time.sleep(1.6)

    with CheckpointCopier(model, tmp_path / "curve", poll_s=0.05, settle_s=1.0) as cp:
        t = threading.Thread(target=writer)
        t.start()
        t.join()
    assert [c.name for c, _ in cp.copies] == ["epoch001.pt", "epoch002.pt", "epoch003.pt"]
    for k, (copy, written) in enumerate(cp.copies):
        assert copy.read_bytes() == bytes([k]) * 2000
        before, after = spans[k]      # the file's mtime lags the clocks by at most a tick
        assert before - 0.05 <= written <= after + 0.05
    timing = tmp_path / "timing.txt"      # 2 epochs of 3 steps + the extra end-of-epoch step
    timing.write_text("".join(f"step {t}\n" for t in (0.0, 1.0, 2.0, 3.0, 3.1, 4.1, 5.1, 6.1, 6.2)))
    assert _official_step_times(timing, 2) == pytest.approx([1.0] * 6)
    assert _official_step_times(timing, 1, until=3.05) == pytest.approx([1.0, 1.0])
