"""``python -m bench.cpu_bf16_check``: are CPU bfloat16 gradients sound on this machine?

Why the CPU trains in bfloat16 by default only from cubes of 48 up
(:data:`isonet2core.device.CPU_BF16_MIN_CUBE`; README, "Mixed precision"): on a CPU with native
bfloat16 it makes the network about 3x faster, but with torch 2.13's oneDNN on an AMD EPYC
(AVX512-BF16) the weight gradients of some 3D convolutions came back as garbage (values near
1e36) when the deepest level of the U-Net is small, and were not the same from one call to the
next (an Intel Xeon with AMX gave none). This check
repeats one forward+backward of ``unet-small`` in bfloat16 on the same batch and compares
every gradient with the float32 one of the same batch, per cube size:

* ``garbage``: calls where a gradient held a value over 1e6 times the float32 one's largest;
* ``reproducible``: whether every call gave bit-identical gradients;
* ``cosine``: the smallest cosine between the whole bfloat16 gradient (every parameter, one
  vector) and the float32 one, over the calls without garbage (1 = the same direction;
  bfloat16 keeps 8 bits of mantissa, so some parameters' gradients, small differences of large
  terms under batch normalisation, differ much more than the whole).

Prints one line per cube size; exit code 1 when any garbage was seen (0 without native
bfloat16: nothing to check).
"""
from __future__ import annotations

import argparse
import sys

import torch

from isonet2core.device import cpu_has_native_bf16
from isonet2core.nets.registry import build


def check(cube: int, batch: int, calls: int, arch: str = "unet-small") -> dict:
    """One cube size: float32 gradients once, then ``calls`` bfloat16 ones of the same batch."""
    torch.manual_seed(0)
    model = build(arch)
    x = torch.randn(batch, 1, cube, cube, cube)

    def grads(bf16: bool) -> list:
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = model(x)
        y.float().pow(2).mean().backward()
        return [p.grad.detach().clone() for p in model.parameters()]

    ref = grads(False)
    ref_flat = torch.cat([r.flatten() for r in ref])
    first, garbage, same, worst = None, 0, True, 1.0
    for _ in range(calls):
        g = grads(True)
        rel = max(float((a - r).abs().max() / (r.abs().max() + 1e-30)) for a, r in zip(g, ref))
        if rel > 1e6 or not all(bool(torch.isfinite(a).all()) for a in g):
            garbage += 1
        else:
            flat = torch.cat([a.flatten() for a in g])
            worst = min(worst, float(torch.nn.functional.cosine_similarity(flat, ref_flat, dim=0)))
        if first is None:
            first = g
        else:
            same = same and all(torch.equal(a, b) for a, b in zip(first, g))
    return {"cube": cube, "batch": batch, "calls": calls, "garbage": garbage, "reproducible": same,
            "cosine": worst}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cpu_bf16_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--cubes", default="16,32,48", help="cube sizes (comma-separated)")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--calls", type=int, default=10)
    a = p.parse_args(argv)
    if not cpu_has_native_bf16():
        print("this CPU has no native bfloat16: nothing to check")
        return 0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, unet-small, batch {a.batch}")
    bad = 0
    for cube in (int(c) for c in a.cubes.split(",")):
        r = check(cube, a.batch, a.calls)
        bad += r["garbage"]
        print(f"cube {cube}: garbage in {r['garbage']}/{r['calls']} calls, reproducible {r['reproducible']}, "
              f"smallest gradient cosine with float32 {r['cosine']:.4f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
