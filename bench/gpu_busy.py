"""``python -m bench.gpu_busy``: how busy our training step keeps the device.

For each ``--config ARCH:CUBE:BATCH`` (``BATCH`` ``auto``: the trainer's rule,
:func:`bench.train_speed.plan_batch`) a trainer session on random maps
(:class:`bench.train_speed.TrainHarness`: the trainer's own functions in the order of an epoch,
cube loading on this thread instead of the trainer's prefetch thread) runs ``--warmup`` steps,
then ``--steps`` timed steps, then ``--steps`` more under ``torch.profiler``. The harness's
section timers are told not to synchronise, so the steps queue GPU work as the trainer does.

* ``step_s``: wall seconds per step without the profiler (synchronised at both ends);
* ``busy_fraction``: the union of the device's activity intervals (kernels, copies, memsets)
  over the profiled wall time; ``busy_fraction_unprofiled`` the same activity over the
  unprofiled wall time (the profiler slows the host side, not the kernels);
* ``kernel_sum_s``: the summed self device time of all operators per step;
* on the CPU the same figures with the torch operators' CPU intervals (all threads) standing
  for the device's activity: the time some torch operator runs, over the wall time (numpy and
  Python work between operators count as idle), so a CPU run exercises the same code path.

Rows are written to ``--out`` (JSON, and a Markdown table beside it) after each configuration.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from bench.common import synchronize
from bench.train_speed import TrainHarness, plan_batch

log = logging.getLogger("bench.gpu_busy")


def union_seconds(intervals: Sequence[Tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals (any unit)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def _activity(prof, device: torch.device) -> Tuple[float, float, int, List[dict]]:
    """(union seconds, summed self seconds, event count, top operators) of the device's
    activity (CUDA) or of the torch operators' CPU time (CPU) in a finished profile."""
    kind = DeviceType.CUDA if device.type == "cuda" else DeviceType.CPU
    events = [e for e in prof.events() if e.device_type == kind]
    union = union_seconds([(e.time_range.start, e.time_range.end) for e in events]) / 1e6

    def self_us(e) -> float:
        if device.type == "cuda":
            return float(getattr(e, "self_device_time_total", 0.0) or getattr(e, "self_cuda_time_total", 0.0))
        return float(e.self_cpu_time_total)

    averages = prof.key_averages()
    total = sum(self_us(e) for e in averages)
    top = [{"op": e.key, "self_ms": round(self_us(e) / 1e3, 2), "calls": int(e.count),
            "percent": round(100.0 * self_us(e) / max(total, 1e-9), 1)}
           for e in sorted(averages, key=self_us, reverse=True)[:8]]
    return union, total / 1e6, len(events), top


def measure(*, arch: str, cube: int, batch: Optional[int], device: str = "cpu", mixed_precision: bool = True,
            warmup: int = 2, steps: int = 4, workdir: Path, threads: Optional[int] = None) -> dict:
    """One row (see the module docstring); ``batch`` None or 0: the trainer's rule; ``threads``:
    torch's CPU threads (set for the process)."""
    if threads:
        torch.set_num_threads(int(threads))
    dev = torch.device(device)
    batch = plan_batch(dev, arch, cube, batch or None)
    workdir.mkdir(parents=True, exist_ok=True)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    h = TrainHarness(arch=arch, cube=cube, batch=batch, device=dev, mixed_precision=mixed_precision,
                     workdir=workdir, n_steps=warmup + 2 * steps)
    h.timer.device = torch.device("cpu")   # section timers without synchronising: the trainer's queueing
    steps = -(-steps // h.reuse) * h.reuse  # whole cycles of fill predictions and reuses
    i = 0

    def run(n: int) -> float:
        nonlocal i
        synchronize(h.device)
        t0 = time.perf_counter()
        for _ in range(n):
            h.train_step(i)
            i += 1
        synchronize(h.device)
        return time.perf_counter() - t0

    run(warmup)
    plain = run(steps)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=activities) as prof:
        profiled = run(steps)
    busy, kernel_sum, n_events, top = _activity(prof, dev)
    amp = h.state.amp
    return {"arch": arch, "cube": cube, "batch": batch, "device": str(h.device),
            "gpu": torch.cuda.get_device_name(h.device) if dev.type == "cuda" else None,
            "precision": "float32" if amp is None else str(amp).replace("torch.", ""),
            "activity": "CUDA kernels, copies, memsets" if dev.type == "cuda" else "torch operators (CPU)",
            "warmup_steps": warmup, "steps": steps, "fill_reuse": h.reuse,
            "step_s": round(plain / steps, 4), "step_s_profiled": round(profiled / steps, 4),
            "busy_s_per_step": round(busy / steps, 4) if n_events else None,   # none: no CUPTI events
            "busy_fraction": round(busy / profiled, 3) if profiled > 0 and n_events else None,
            "busy_fraction_unprofiled": round(min(1.0, busy / plain), 3) if plain > 0 and n_events else None,
            "kernel_sum_s_per_step": round(kernel_sum / steps, 4),
            "events_per_step": round(n_events / steps, 1),
            "peak_memory_mib": round(torch.cuda.max_memory_allocated(h.device) / 2 ** 20, 1)
            if dev.type == "cuda" else None,
            "top_ops": top}


def parse_config(text: str) -> Tuple[str, int, Optional[int]]:
    """``ARCH:CUBE:BATCH`` (``BATCH`` ``auto`` or omitted: the trainer's rule)."""
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"expected ARCH:CUBE[:BATCH], got {text!r}")
    batch = parts[2] if len(parts) == 3 else "auto"
    return parts[0], int(parts[1]), None if batch == "auto" else int(batch)


def write(out: Path, rows: List[dict]) -> None:
    """``out`` (JSON) and ``out`` with ``.md`` (a table)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| arch | cube | batch | precision | device | step s | busy fraction | busy (unprofiled) | "
             "kernel sum s/step | events/step | peak MiB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = [r.get(k) for k in ("arch", "cube", "batch", "precision", "device", "step_s", "busy_fraction",
                                    "busy_fraction_unprofiled", "kernel_sum_s_per_step", "events_per_step",
                                    "peak_memory_mib")]
        if "error" in r:
            cells = [r["arch"], r["cube"], r["batch"], "-", r.get("device"), r["error"], *["-"] * 5]
        lines.append("| " + " | ".join("-" if c is None else str(c) for c in cells) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.gpu_busy", description=__doc__.splitlines()[0])
    p.add_argument("--config", type=parse_config, action="append", default=None,
                   help="ARCH:CUBE:BATCH (repeatable; default unet-medium:96:auto)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--mixed-precision", choices=("on", "off"), default="on")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--out", type=Path, default=Path("gpu_busy.json"))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    rows: List[dict] = []
    for arch, cube, batch in a.config or [parse_config("unet-medium:96:auto")]:
        log.info("gpu_busy %s cube %d batch %s on %s ...", arch, cube, batch or "auto", a.device)
        with tempfile.TemporaryDirectory(prefix="gpu-busy-") as tmp:
            try:
                row = measure(arch=arch, cube=cube, batch=batch, device=a.device, warmup=a.warmup, steps=a.steps,
                              mixed_precision=a.mixed_precision == "on", workdir=Path(tmp), threads=a.threads)
            except RuntimeError as exc:   # out of memory (or another CUDA failure): the next config goes on
                row = {"arch": arch, "cube": cube, "batch": batch, "device": a.device,
                       "error": (str(exc).splitlines() or [""])[0][:120]}
        rows.append(row)
        log.info("  %s", {k: v for k, v in row.items() if k != "top_ops"})
        write(a.out, rows)
        if a.device.startswith("cuda"):
            torch.cuda.empty_cache()
    print(a.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
