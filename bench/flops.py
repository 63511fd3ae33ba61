"""FLOP counts of the U-Net and the machine's own dense rates.

* :func:`unet_flops` counts the floating-point operations of a forward pass, or of a forward
  plus backward pass, with ``torch.utils.flop_counter.FlopCounterMode`` on the ``meta`` device
  (shapes only, nothing is computed): convolutions and transposed convolutions, 2 FLOPs per
  multiply-add; element-wise work (LeakyReLU, concatenation, bias) is not counted.
* :func:`matmul_rate` and :func:`conv_rate` time a dense float32 matrix product and a 3D
  convolution typical of the U-Net's first level on the device, in the same run, so the
  U-Net's achieved FLOP/s (from the timings of :mod:`bench.train_speed` and
  :mod:`bench.predict_speed`) can be read as a fraction of what the machine does on plain
  dense work.
"""
from __future__ import annotations

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.common import synchronize


def unet_flops(arch: str, cube: int, batch: int, *, backward: bool) -> int:
    """FLOPs of the ``arch`` U-Net on ``(batch, 1, cube, cube, cube)``: forward, or forward +
    backward (weight and input gradients) when ``backward``."""
    from isonet2core.nets.registry import build

    with torch.device("meta"):
        model = build(arch).eval()   # batch statistics of one cube would not exist at 16^3
        x = torch.empty(batch, 1, cube, cube, cube)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        if backward:
            out.sum().backward()
    return int(counter.get_total_flops())


def _best_rate(fn, flops: float, device: torch.device, reps: int) -> float:
    fn()
    synchronize(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return flops / best


def matmul_rate(device: torch.device, n: int = 2048, reps: int = 5,
                dtype: torch.dtype = torch.float32) -> float:
    """Best-of-``reps`` FLOP/s of an ``n x n`` by ``n x n`` matrix product (``2 n^3`` FLOPs)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return _best_rate(lambda: torch.mm(a, b), 2.0 * n ** 3, device, reps)


def conv_rate(device: torch.device, channels: int = 32, size: int = 48, batch: int = 2,
              reps: int = 3, dtype: torch.dtype = torch.float32) -> float:
    """Best-of-``reps`` FLOP/s of one 3x3x3 convolution ``channels -> channels`` (padding 1)
    on ``(batch, channels, size, size, size)``, forward only, inference mode."""
    conv = torch.nn.Conv3d(channels, channels, 3, padding=1).to(device=device, dtype=dtype)
    x = torch.randn(batch, channels, size, size, size, device=device, dtype=dtype)
    flops = 2.0 * batch * channels * size ** 3 * channels * 27

    def run():
        with torch.inference_mode():
            conv(x)

    return _best_rate(run, flops, device, reps)
