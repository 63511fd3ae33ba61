"""Restoration quality at fixed training budgets, against simulated ground truth.

1. ``isonet2core.simulation.simulate.simulate_dataset`` makes one tomogram (full, even, odd and the
   ground truth, protein dark) with its acquisition (tilt range, CTF).
2. Baselines: the raw full map and its Wiener deconvolution (``isonet2core.steps.deconv``, defaults).
3. For ``denoise`` (method ``n2n``), ``refine`` (method ``isonet2-n2n``) and refine with the
   fill predicted on every step (``fill_reuse = 1``, see :data:`RUNS`) one training run each (the trainer's ``train``, in a worker process) with a checkpoint after every epoch
   (``save_interval=1``). The learning rate is constant (the defaults ``learning_rate =
   learning_rate_min``) and an epoch depends only on the seed, its number and the state at its
   start, so the checkpoint of the last epoch finished within budget ``B`` *is* the result of
   a run stopped at ``B``: one run of the largest budget serves all budgets. The budget counts
   the trainer's own epoch seconds (``loss_history.json``: cube loading, targets, network,
   optimiser); checkpoint writing (here every epoch, in real runs every ``save_interval``) is
   reported separately. The run is stopped once its epochs pass the largest budget. Epochs
   are sized from the measured step time to last about ``epoch_target_s``.
4. Each selected checkpoint is applied with ``isonet2core.steps.predict.predict_tomograms`` (even and
   odd predicted and averaged, as ``isonet2 predict`` does) and compared with the ground truth
   by ``isonet2core.imaging.metrics``: Pearson correlation, PSNR, the FSC = 0.143 resolution, and the
   FSC restricted to the missing-wedge region (``metrics.mean_fsc``: mean over the shells up
   to Nyquist, and up to 0.25 cycles/voxel).
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from bench.worker import finish_worker, start_worker

log = logging.getLogger(__name__)

RUNS = {"denoise": ("n2n", {}), "refine": ("isonet2-n2n", {}),
        "refine, fill_reuse 1": ("isonet2-n2n", {"fill_reuse": 1})}
"""Bench label -> (training method, settings other than the trainer's defaults). The last run
predicts the wedge filling on every step (the trainer's default reuses it, ``fill_reuse``):
the quality it buys, side by side with the default at the same budgets."""


# --------------------------------------------------------------------------- metrics
WEDGE_FSC_LOW_FREQ = 0.25
"""Upper frequency (cycles/voxel) of the low-resolution wedge-FSC summary."""


def evaluate(volume: np.ndarray, truth: np.ndarray, *, pixel_size_a: float,
             tilt_min_deg: float, tilt_max_deg: float) -> dict:
    """Quality of a ``(z, y, x)`` map against the ground truth (same shape): Pearson, PSNR
    (after the least-squares affine fit of ``metrics.psnr``), FSC = 0.143 resolution (A), and
    the mean missing-wedge FSC over all shells and over the shells up to
    ``WEDGE_FSC_LOW_FREQ`` cycles/voxel."""
    from isonet2core.imaging import metrics
    freq, curve = metrics.fsc(volume, truth)
    wfreq, wcurve = metrics.wedge_fsc(volume, truth, tilt_min_deg, tilt_max_deg)
    return {
        "pearson": _round(metrics.pearson(volume, truth), 4),
        "psnr_db": _round(metrics.psnr(volume, truth), 2),
        "fsc_0143_a": _round(metrics.fsc_resolution(freq, curve, pixel_size_a, threshold=0.143), 1),
        "wedge_fsc_mean": _round(metrics.mean_fsc(wfreq, wcurve), 4),
        "wedge_fsc_low": _round(metrics.mean_fsc(wfreq, wcurve, f_max=WEDGE_FSC_LOW_FREQ), 4),
    }


def _round(value, digits):
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


# --------------------------------------------------------------------------- training worker
def fit_worker(*, method: str, arch: str, cube: int, batch: int, epochs: int, n_subtomos: int,
               maps: Sequence[str], microscope: dict, output_dir: str, device: str = "cpu",
               mixed_precision: bool = False, threads: Optional[int] = None,
               settings: Optional[dict] = None, **_) -> dict:
    """Train with the trainer's ``train`` (run in a worker process; see the module docstring)."""
    from isonet2core.config import Microscope, TrainConfig
    from isonet2core.training import trainer

    if threads:
        torch.set_num_threads(int(threads))
    cfg = TrainConfig(method=method, arch=arch, cube_size=cube, batch_size=batch, epochs=epochs,
                      save_interval=1, mixed_precision=mixed_precision, seed=0, **(settings or {}))
    spec = trainer.TomogramSpec(name="tomo_001", map_paths=tuple(Path(p) for p in maps),
                                microscope=Microscope(**microscope), n_subtomos=n_subtomos)
    run = trainer.RunSettings(output_dir=Path(output_dir), device=torch.device(device).type,
                              ncpus=int(threads or torch.get_num_threads()), progress=False)
    result = trainer.train(cfg, [spec], run)
    return {"status": "ok", "epochs": len(result.history)}


def _history(path: Path) -> List[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return []


def train_within(budget_s: float, args: dict, poll_s: float = 1.0) -> dict:
    """Run :func:`fit_worker` until its epochs pass ``budget_s`` trained seconds (then stop
    it) or it finishes; returns the history, the wall time and how it ended."""
    out = Path(args["output_dir"])
    history_path = out / "loss_history.json"
    proc, result_path = start_worker("fit", args)
    t0 = time.perf_counter()
    wall_cap = 2.0 * budget_s + 180.0
    ended = "finished all epochs"
    while proc.poll() is None:
        time.sleep(poll_s)
        trained = sum(float(h["seconds"]) for h in _history(history_path))
        if trained >= budget_s:
            ended = f"stopped after {trained:.0f} s trained (budget {budget_s:.0f} s)"
            break
        if time.perf_counter() - t0 > wall_cap:
            ended = f"stopped at the wall-clock cap of {wall_cap:.0f} s"
            break
    if proc.poll() is None:
        proc.kill()
    status = finish_worker(proc, result_path, timeout_s=60)
    if proc.returncode not in (0, None) and status.get("status") == "failed" and "stopped" not in ended:
        ended = status.get("reason", "failed")
    return {"history": _history(history_path), "wall_s": round(time.perf_counter() - t0, 1),
            "ended": ended}


# --------------------------------------------------------------------------- the section
def _star_for(sim: dict, microscope, path: Path) -> Path:
    from isonet2core.io import star
    table = star.TomogramsTable.from_records([{
        star.TOMO_NAME: "tomo_001", star.TOMO_FULL: sim["full"],
        star.TOMO_HALF1: sim["even"], star.TOMO_HALF2: sim["odd"],
        star.PIXEL_SIZE: microscope.pixel_size_a, star.DEFOCUS: microscope.defocus_a,
        star.VOLTAGE: microscope.voltage_kv, star.CS: microscope.cs_mm,
        star.AC: microscope.amplitude_contrast, star.TILT_MIN: microscope.tilt_min_deg,
        star.TILT_MAX: microscope.tilt_max_deg}])
    table.write(path)
    return path


def run_quality(*, workdir: Path, budgets_min: Sequence[float], device: torch.device,
                arch: str, cube: int, batch: int, shape: Sequence[int], step_s_estimate: Dict[str, float],
                epoch_target_s: float = 30.0, mixed_precision: bool = False,
                predict_batch: int = 2, threads: Optional[int] = None, seed: int = 0) -> dict:
    """The quality section (see the module docstring). ``step_s_estimate``: expected seconds
    of one training step per method label (``denoise``, ``refine``), to size the epochs."""
    from isonet2core.config import DeconvConfig, Microscope
    from isonet2core.io import mrcio
    from isonet2core.simulation.simulate import SimulationConfig, simulate_dataset
    from isonet2core.steps import deconv

    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sim_cfg = SimulationConfig(shape=tuple(int(s) for s in shape), seed=seed)
    sim = simulate_dataset(workdir / "sim", sim_cfg)[0]
    acq = json.loads((workdir / "sim" / "acquisition.json").read_text())
    microscope = Microscope(pixel_size_a=sim_cfg.pixel_size_a, defocus_a=sim["defocus_a"],
                            voltage_kv=sim_cfg.voltage_kv, cs_mm=sim_cfg.cs_mm,
                            amplitude_contrast=sim_cfg.amplitude_contrast,
                            tilt_min_deg=acq["tilt_min_deg"], tilt_max_deg=acq["tilt_max_deg"])
    truth = mrcio.read_mrc(sim["ground_truth"])[0]
    full = mrcio.read_mrc(sim["full"])[0]
    score = lambda v: evaluate(v, truth, pixel_size_a=microscope.pixel_size_a,  # noqa: E731
                               tilt_min_deg=microscope.tilt_min_deg, tilt_max_deg=microscope.tilt_max_deg)
    rows = [{"output": "raw (full map)", "budget_min": None, **score(full)}]
    t_dc = time.perf_counter()
    dc = deconv.deconvolve(full, microscope, DeconvConfig(ncpus=threads or torch.get_num_threads()))
    rows.append({"output": "deconv (Wiener, defaults)", "budget_min": None,
                 "seconds": round(time.perf_counter() - t_dc, 1), **score(dc)})
    del dc

    budgets_s = sorted(60.0 * float(b) for b in budgets_min)
    epoch_s = min(epoch_target_s, budgets_s[0] / 4.0)
    runs = {}
    for label, (method, settings) in RUNS.items():
        step_s = max(1e-3, step_s_estimate[label])
        steps_per_epoch = max(1, int(round(epoch_s / step_s)))
        # far more epochs than the budget can hold (the run is stopped at the budget; with the
        # constant learning rate the epoch count changes nothing else)
        epochs = int(math.ceil(budgets_s[-1] / (steps_per_epoch * step_s) * 10.0)) + 10
        tag = label.replace(", ", "_").replace(" ", "_")
        out = workdir / f"train_{tag}"
        args = dict(method=method, arch=arch, cube=cube, batch=batch, epochs=epochs,
                    n_subtomos=batch * steps_per_epoch, maps=[sim["even"], sim["odd"]],
                    microscope={k: getattr(microscope, k) for k in (
                        "pixel_size_a", "defocus_a", "voltage_kv", "cs_mm", "amplitude_contrast",
                        "tilt_min_deg", "tilt_max_deg")},
                    output_dir=str(out), device=str(device), mixed_precision=mixed_precision,
                    threads=threads, settings=settings)
        log.info("quality: training %s (%s, %s, cube %d, batch %d, %d steps/epoch) for %.0f s",
                 label, method, arch, cube, batch, steps_per_epoch, budgets_s[-1])
        fit = train_within(budgets_s[-1], args)
        history = fit["history"]
        cumulative = np.cumsum([float(h["seconds"]) for h in history]) if history else np.array([])
        runs[label] = {"method": method, "settings": settings, "steps_per_epoch": steps_per_epoch,
                       "subtomos_per_epoch": batch * steps_per_epoch, "epochs_run": len(history),
                       "trained_s": round(float(cumulative[-1]), 1) if len(cumulative) else 0.0,
                       "wall_s_with_checkpoints": fit["wall_s"], "ended": fit["ended"],
                       "mean_step_s": round(float(cumulative[-1]) / max(1, sum(h["steps"] for h in history)), 3)
                       if len(cumulative) else None}
        rows += [_budget_row(label, budget, history, cumulative, out, method, arch, cube, batch,
                             steps_per_epoch, sim, microscope, workdir, tag, predict_batch,
                             mixed_precision, device, score) for budget in budgets_s]
        for p in out.glob("*_epoch*.pt"):
            p.unlink()
    return {"arch": arch, "cube": cube, "batch": batch, "shape": list(shape),
            "simulation": {k: v for k, v in acq.get("config", {}).items()},
            "budgets_min": [b / 60.0 for b in budgets_s], "epoch_target_s": epoch_s,
            "runs": runs, "rows": rows, "section_wall_s": round(time.perf_counter() - t0, 1)}


def _budget_row(label, budget, history, cumulative, out, method, arch, cube, batch, steps_per_epoch,
                sim, microscope, workdir, tag, predict_batch, mixed_precision, device, score) -> dict:
    """The row of one budget: the last epoch finished within it, predicted and scored."""
    from isonet2core.config import PredictConfig
    from isonet2core.io import mrcio, output_names
    from isonet2core.steps import predict

    done = [i for i, c in enumerate(cumulative) if c <= budget + 1e-9]
    row = {"output": label, "budget_min": round(budget / 60.0, 3)}
    if not done:
        row["note"] = "no epoch finished within the budget"
        return row
    epoch = int(history[done[-1]]["epoch"])
    model_file = output_names.model_path(out, method, arch, cube, epoch)
    star_path = _star_for(sim, microscope, workdir / f"eval_{tag}_{epoch}.star")
    t_p = time.perf_counter()
    written = predict.predict_tomograms(star_path, model_file, output_dir=workdir / f"pred_{tag}_{epoch}",
                                        config=PredictConfig(batch_size=predict_batch,
                                                             mixed_precision=mixed_precision),
                                        device=device)
    predict_s = time.perf_counter() - t_p
    main = mrcio.read_mrc(written[-1])[0]
    row.update({"epoch": epoch, "trained_s": round(float(cumulative[done[-1]]), 1),
                "subtomos_seen": epoch * batch * steps_per_epoch,
                "final_loss": round(float(history[done[-1]]["loss"]), 5),
                "predict_s": round(predict_s, 1), **score(main)})
    for p in written:
        Path(p).unlink(missing_ok=True)
    return row
