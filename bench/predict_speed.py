"""Prediction throughput and peak memory against tomogram size.

Each size is measured in a fresh worker process (:func:`measure_size`):

1. a random ``(z, y, x)`` float32 tomogram and a fresh U-Net (the cost does not depend on the
   weights); warm-up: one bare forward batch and ``predict_volume`` on a corner of the tomogram
   (kernel selection, thread pools, FFT plans); the tomogram is then written to an MRC file in
   a temporary folder and the in-memory array dropped;
2. ``isonet2core.steps.map_streaming.predict_file``, what ``isonet2 predict`` runs for each map: the MRC
   file read z slab by z slab, normalisation, missing-wedge input filter of ``apply_mw_x1``,
   tiling, batched network, Hann blending, denormalisation, the output streamed into an MRC
   file; timed end to end, with the process's peak memory during it;
3. the bare network: forward passes under ``torch.inference_mode`` (and the same autocast and,
   on the CPU, the same channels-last weights as ``predict_file``) on
   batches of random tiles of the same size and batch size, over ``min(n_tiles,
   bare_max_tiles)`` tiles; its time per tile times the tile count of the tomogram is the
   bare-network time of the same tiles. ``efficiency = bare time / predict time`` (the target
   is at least 0.6).

``peak_memory_mib`` is the peak over the process's memory before the tomogram and the model
were made, so it contains the model (the tomogram itself is then on disk only; prediction
holds a few slabs of ``cube`` z planes of it and of the output);
``memory_ratio = peak / (tomogram bytes + model bytes)``.
:func:`fit_power_law` fits ``time ~ voxels^p`` (``p = 1``: linear) and
``peak = a + slope * tomogram bytes`` over the sizes.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from bench.common import PeakMemory, mib, synchronize


def measure_size(*, shape: Sequence[int], arch: str, cube: int, batch_size: int = 4,
                 device: str = "cpu", mixed_precision: bool = False, bare_max_tiles: int = 16,
                 padding_factor: float = 1.5, threads: Optional[int] = None, amp_dtype: str = "auto",
                 compile_model: bool = False, **_) -> dict:
    """Measure ``predict_file`` (MRC file to MRC file) on one tomogram size; see the module
    docstring."""
    from isonet2core.config import Microscope, PredictConfig
    from isonet2core.device import autocast_dtype, precision_name
    from isonet2core.io import mrcio
    from isonet2core.nets.registry import build
    from isonet2core.nets.unet import compiled
    from isonet2core.steps import inference, map_streaming, tiling

    t_start = time.perf_counter()
    if threads:
        torch.set_num_threads(int(threads))
    dev = torch.device(device)
    shape = tuple(int(s) for s in shape)
    mem = PeakMemory(dev)   # baseline: before the tomogram and the model
    volume = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    tomogram_bytes = volume.nbytes
    model = build(arch).to(dev).eval()
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    cfg = PredictConfig(batch_size=batch_size, mixed_precision=mixed_precision, amp_dtype=amp_dtype,
                        compile_model=compile_model, padding_factor=padding_factor)
    scope = Microscope(pixel_size_a=10.0)
    amp = autocast_dtype(dev, mixed_precision, amp_dtype, training=False)
    called = compiled(model, compile_model)
    grid = tiling.TileGrid.for_volume(shape, cube, padding_factor)
    x = torch.randn(batch_size, 1, cube, cube, cube, device=dev)

    def bare_batch() -> None:
        with torch.inference_mode(), torch.autocast(device_type=dev.type, dtype=amp,
                                                    enabled=amp is not None):
            called(x)

    bare_batch()   # warm-up: kernels, thread pools, FFT plans of the tile size
    inference.predict_volume(model, np.ascontiguousarray(volume[:cube, :cube, :cube]), cube_size=cube,
                           config=cfg, microscope=scope, device=dev)
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp:
        source = mrcio.write_mrc(Path(tmp) / "tomogram.mrc", volume, 10.0)
        del volume
        synchronize(dev)
        mem.reset()
        c0 = time.process_time()
        t0 = time.perf_counter()
        map_streaming.predict_file([model], source, Path(tmp) / "predicted.mrc", cube_size=cube,
                             config=cfg, microscope=scope, device=dev)
        synchronize(dev)
        predict_s = time.perf_counter() - t0
        predict_cpu_s = time.process_time() - c0
        peak = mem.peak_bytes()

    n_batches = max(1, math.ceil(min(grid.n_tiles, bare_max_tiles) / batch_size))
    if dev.type == "cpu":   # the layout predict_file uses on the CPU
        model.to(memory_format=torch.channels_last_3d)
    bare_batch()
    synchronize(dev)
    t0 = time.perf_counter()
    for _ in range(n_batches):
        bare_batch()
    synchronize(dev)
    bare_per_tile = (time.perf_counter() - t0) / (n_batches * batch_size)
    bare_s = bare_per_tile * grid.n_tiles
    voxels = int(np.prod(shape))
    return {
        "status": "ok", "shape": list(shape), "voxels": voxels, "arch": arch, "cube": cube,
        "batch_size": batch_size, "device": str(dev), "mixed_precision": amp is not None,
        "precision": precision_name(amp),
        "compile_model": bool(compile_model),
        "n_tiles": grid.n_tiles, "predict_s": round(predict_s, 3),
        "cpu_utilization": round(predict_cpu_s / (predict_s * torch.get_num_threads()), 3),
        "voxels_per_s": round(voxels / predict_s, 1),
        "tiles_per_s": round(grid.n_tiles / predict_s, 4),
        "bare_s_same_tiles": round(bare_s, 3), "bare_tiles_timed": n_batches * batch_size,
        "efficiency": round(bare_s / predict_s, 3),
        "peak_memory_mib": mib(peak), "tomogram_mib": mib(tomogram_bytes), "model_mib": mib(model_bytes),
        "memory_ratio": None if peak is None else round(peak / (tomogram_bytes + model_bytes), 2),
        "peak_memory_method": mem.method, "predicted": "MRC file to MRC file (predict_file)",
        "measure_wall_s": round(time.perf_counter() - t_start, 1),
    }


def fit_power_law(xs: Sequence[float], ys: Sequence[float]) -> Optional[float]:
    """Least-squares exponent ``p`` of ``y ~ x^p`` (log-log slope); None for fewer than 2 points."""
    if len(xs) < 2:
        return None
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(lx, ly, 1)[0])


def fit_linear(xs: Sequence[float], ys: Sequence[float]) -> Optional[tuple]:
    """``(intercept, slope)`` of ``y = a + slope * x``; None for fewer than 2 points."""
    if len(xs) < 2:
        return None
    slope, intercept = np.polyfit(np.asarray(xs, float), np.asarray(ys, float), 1)
    return float(intercept), float(slope)
