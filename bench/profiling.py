"""Where the time goes: profiles of one training step and of one prediction run.

Both are profiled twice, after a warm-up: with ``torch.profiler`` (operators, self time, so
the network's convolutions and the FFTs appear by name) and with ``cProfile`` (Python
functions, total time excluding sub-calls, so numpy work of tiling and sampling appears too).
The top entries of each are returned as lists of dicts for the results file.
"""
from __future__ import annotations

import cProfile
import pstats
from pathlib import Path
from typing import Callable, List, Sequence

import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from bench.train_speed import TrainHarness


def _torch_top(fn: Callable[[], None], device: torch.device, top: int) -> List[dict]:
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        fn()
    events = prof.key_averages()
    use_cuda = device.type == "cuda"

    def self_us(e) -> float:
        if use_cuda:
            return float(getattr(e, "self_device_time_total", 0.0) or getattr(e, "self_cuda_time_total", 0.0))
        return float(e.self_cpu_time_total)

    total = sum(self_us(e) for e in events) or 1.0
    rows = sorted(events, key=self_us, reverse=True)[:top]
    return [{"op": e.key, "self_ms": round(self_us(e) / 1e3, 2), "calls": int(e.count),
             "percent": round(100.0 * self_us(e) / total, 1)} for e in rows]


def _cprofile_top(fn: Callable[[], None], top: int) -> List[dict]:
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof)
    total = stats.total_tt or 1.0
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    out = []
    for (filename, line, func), (_cc, ncalls, tottime, _cum, _callers) in rows:
        where = Path(filename).name if filename != "~" else ""
        out.append({"function": f"{where}:{line}({func})" if where else func,
                    "tottime_s": round(tottime, 3), "calls": int(ncalls),
                    "percent": round(100.0 * tottime / total, 1)})
    return out


def profile_training_step(*, arch: str, cube: int, batch: int, device: torch.device,
                          mixed_precision: bool, workdir: Path, top: int = 12) -> dict:
    """Profiles of one refine training step (after one warm-up step)."""
    workdir.mkdir(parents=True, exist_ok=True)
    h = TrainHarness(arch=arch, cube=cube, batch=batch, device=device,
                     mixed_precision=mixed_precision, workdir=workdir, n_steps=3)
    h.train_step(0)
    ops = _torch_top(lambda: h.train_step(1), device, top)
    funcs = _cprofile_top(lambda: h.train_step(2), top)
    return {"arch": arch, "cube": cube, "batch": batch, "torch_ops": ops, "python_functions": funcs}


def profile_prediction(*, shape: Sequence[int], arch: str, cube: int, batch_size: int,
                       device: torch.device, mixed_precision: bool, top: int = 12) -> dict:
    """Profiles of ``predict_volume`` on a random tomogram of ``shape`` (after a warm-up run)."""
    from isonet2core.config import Microscope, PredictConfig
    from isonet2core.nets.registry import build
    from isonet2core.steps import inference

    volume = np.random.default_rng(0).standard_normal(tuple(shape), dtype=np.float32)
    model = build(arch).to(device).eval()
    cfg = PredictConfig(batch_size=batch_size, mixed_precision=mixed_precision)

    def run() -> None:
        inference.predict_volume(model, volume, cube_size=cube, config=cfg,
                               microscope=Microscope(pixel_size_a=10.0), device=device)

    run()
    ops = _torch_top(run, device, top)
    funcs = _cprofile_top(run, top)
    return {"shape": list(shape), "arch": arch, "cube": cube, "batch_size": batch_size,
            "torch_ops": ops, "python_functions": funcs}
