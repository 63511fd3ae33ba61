"""``python -m bench.fit_search``: the largest training batch and cube that fit the card.

Ours (in this process, ``--arch`` each): a trainer session on random maps
(:class:`bench.train_speed.TrainHarness`) runs two training steps (the first with the no-grad
fill predictions, the second reusing them) at each size tried; running out of device memory
(``torch.OutOfMemoryError``, caught; the session is dropped and the cache emptied before the
next try) marks a size that does not fit. Two searches per network: the batch at ``--cube``
and the cube at batch 1, each doubling from its start while it fits (up to ``--max-batch`` /
``--max-cube``), then ``--refine`` bisection steps between the last size that fitted and the
first that did not (cubes in multiples of 16).

The official program (``--official-python``, optional): its ``refine`` as a whole process,
one epoch of two steps per try on the simulated lamella of ``--data``/``--geometry``/``--shape``
(:func:`bench.side_by_side.make_data`), the batch doubling from ``--official-start`` at
``--cube``; a try whose log holds ``out of memory`` did not fit. Its peak is read from
``ISONET_PEAK_LOG`` (bench/device/peak_hook) when set.

Each try is a row of ``--out`` (JSON, Markdown beside it), rewritten after every try: program,
arch, cube, batch, status (ok / oom / failed / skipped), peak allocated MiB, seconds of the
second step (ours), and a summary line per search. On the CPU nothing runs out of memory: keep
the caps small there (the dry run).
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional, Tuple

import torch

from bench.common import synchronize
from isonet2core.device import is_out_of_memory

log = logging.getLogger("bench.fit_search")


def largest(fits: Callable[[int], bool], start: int, cap: int, quantum: int = 1,
            refine: int = 2) -> Tuple[Optional[int], Optional[int]]:
    """The largest value for which ``fits`` holds: doubling from ``start`` (up to ``cap``), then
    ``refine`` bisection steps (multiples of ``quantum``) between the last value that fitted and
    the first that did not. Returns ``(largest fitting or None, smallest failing or None)``."""
    ok, bad, v = None, None, start
    while v <= cap:
        if not fits(v):
            bad = v
            break
        ok, v = v, v * 2
    for _ in range(refine if ok is not None and bad is not None else 0):
        mid = (ok + bad) // 2 // quantum * quantum
        if mid <= ok:
            break
        if fits(mid):
            ok = mid
        else:
            bad = mid
    return ok, bad


def try_ours(*, arch: str, cube: int, batch: int, device: torch.device, mixed_precision: bool = True) -> dict:
    """Two training steps of ours at one size: a row (status ok or oom)."""
    from bench.train_speed import TrainHarness

    row = {"program": "ours", "arch": arch, "cube": cube, "batch": batch}
    with tempfile.TemporaryDirectory(prefix="fit-search-") as tmp:
        try:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            h = TrainHarness(arch=arch, cube=cube, batch=batch, device=device, mixed_precision=mixed_precision,
                             workdir=Path(tmp), n_steps=2)
            h.train_step(0)
            synchronize(device)
            t0 = time.perf_counter()
            h.train_step(1)
            synchronize(device)
            row.update(status="ok", step_s=round(time.perf_counter() - t0, 4))
        except RuntimeError as exc:   # OutOfMemoryError, or a library's failed allocation (cuFFT, cuDNN)
            row.update(status="oom" if is_out_of_memory(exc) else "failed",
                       note=(str(exc).splitlines() or [""])[0][:160])
        h = None
        gc.collect()
        if device.type == "cuda":
            row["peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2 ** 20, 1)
            torch.cuda.empty_cache()
    return row


def try_official(official, data: dict, *, arch: str, cube: int, batch: int, work: Path, device: str,
                 peak_log: Optional[str]) -> dict:
    """One epoch of two steps of the official refine at one size, as a whole process."""
    from bench import side_by_side as sbs

    row = {"program": "official", "arch": arch, "cube": cube, "batch": batch}
    s = sbs.Settings(arch=arch, cube=cube, batch=batch, epochs=1, steps_per_epoch=2, device=device,
                     mixed_precision=True, own_defaults=True)
    work.mkdir(parents=True, exist_ok=True)
    logp = work / "log.txt"
    t0 = time.perf_counter()
    try:
        official(["prepare_star", *sbs._acq_args(data["acq"], data["folder"]), "--number_subtomos",
                  str(s.subtomos)], work, logp)
        args = ["refine", "tomograms.star", "--output_dir", "maps", "--epochs", "1", *sbs._train_args(s, "isonet2-n2n")]
        official([a for a in args if device == "cuda" or a not in ("--gpuID", "None")], work, logp)
        row["status"] = "ok"
    except RuntimeError:
        text = logp.read_text(errors="replace").lower()
        row["status"] = "oom" if "out of memory" in text else "failed"
        row["note"] = f"see {logp}"
    row["process_s"] = round(time.perf_counter() - t0, 1)
    if peak_log and Path(peak_log).exists():
        peaks = [json.loads(line) for line in Path(peak_log).read_text().splitlines() if line.strip()]
        mine = [p for p in peaks if p.get("cwd") == str(work) and "refine" in p.get("argv", [])]
        if mine:
            row["peak_mib"] = mine[-1].get("cuda_max_allocated_mib", mine[-1].get("peak_rss_mib"))
    return row


def write(out: Path, rows: List[dict], summary: List[str]) -> None:
    """``out`` (JSON) and ``out`` with ``.md``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"summary": summary, "tries": rows}, indent=2) + "\n")
    lines = [f"* {s}" for s in summary] + ["", "| program | arch | cube | batch | status | peak MiB | step s | note |",
                                           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(k, "-")) for k in ("program", "arch", "cube", "batch", "status",
                                                                      "peak_mib", "step_s", "note")) + " |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _search(label: str, fits: Callable[[int], bool], start: int, cap: int, quantum: int, refine: int,
            summary: List[str]) -> None:
    ok, bad = largest(fits, start, cap, quantum, refine)
    summary.append(f"{label}: largest fitting {ok}" + (f", first not fitting {bad}" if bad else f" (cap {cap})"))
    log.info(summary[-1])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.fit_search", description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--arch", default="unet-medium", help="networks of ours, comma-separated")
    p.add_argument("--cube", type=int, default=96, help="cube of the batch searches")
    p.add_argument("--batch-start", type=int, default=4)
    p.add_argument("--max-batch", type=int, default=512)
    p.add_argument("--cube-start", type=int, default=96)
    p.add_argument("--max-cube", type=int, default=512)
    p.add_argument("--refine", type=int, default=2, help="bisection steps after the doubling")
    p.add_argument("--mixed-precision", choices=("on", "off"), default="on")
    p.add_argument("--skip-ours", action="store_true", help="only the official program's searches")
    p.add_argument("--official-python", default=None, help="a python that imports IsoNet (its rows)")
    p.add_argument("--official-start", type=int, default=4)
    p.add_argument("--official-max-batch", type=int, default=256)
    p.add_argument("--data", type=Path, default=Path("/tmp/sbs_data"))
    p.add_argument("--geometry", default="pm60")
    p.add_argument("--shape", default="112x192x192")
    p.add_argument("--peak-log", default=None, help="ISONET_PEAK_LOG of the official processes")
    p.add_argument("--out", type=Path, default=Path("fit_search.json"))
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    dev = torch.device(a.device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    rows: List[dict] = []
    summary: List[str] = [f"device {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}"]

    def record(row: dict) -> bool:
        rows.append(row)
        log.info("%s", row)
        write(a.out, rows, summary)
        return row["status"] == "ok"

    for arch in [] if a.skip_ours else a.arch.split(","):
        def ours(cube: int, batch: int, arch: str = arch) -> bool:
            return record(try_ours(arch=arch, cube=cube, batch=batch, device=dev,
                                   mixed_precision=a.mixed_precision == "on"))
        _search(f"ours {arch}, cube {a.cube}: batch", lambda b: ours(a.cube, b), a.batch_start, a.max_batch, 1,
                a.refine, summary)
        _search(f"ours {arch}, batch 1: cube", lambda c: ours(c, 1), a.cube_start, a.max_cube, 16, a.refine, summary)
        write(a.out, rows, summary)
    if a.official_python:
        from bench import side_by_side as sbs

        official = sbs.Official(None, a.official_python)
        data = sbs.make_data(a.data, a.geometry, [int(x) for x in a.shape.split("x")], seed=0)
        for arch in a.arch.split(","):
            _search(f"official {arch}, cube {a.cube}: batch", lambda b, arch=arch: record(try_official(
                official, data, arch=arch, cube=a.cube, batch=b, device=dev.type, peak_log=a.peak_log,
                work=(a.out.parent / f"fit_official_{arch}_{a.cube}_{b}").absolute())),
                a.official_start, a.official_max_batch, 1, 0, summary)
            write(a.out, rows, summary)
    else:
        summary.append("official: not searched (no --official-python)")
        write(a.out, rows, summary)
    print(a.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
