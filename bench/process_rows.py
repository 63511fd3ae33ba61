"""``python -m bench.process_rows``: whole-process rows of ours beside the official program.

``steps``: the per-step table of :mod:`bench.side_by_side` runs (``--runs`` their output
folders): per run and program the training steps, the batch (ours' from its log when the batch
was left to each program's auto rule; the official program's auto rule gives 4 on one GPU, its
``process_batch_size``), the median seconds per step after warm-up (as side_by_side reports
it), cubes per second, the official/ours ratios per step and per cube, and each training
process's peaks from ``--peaks`` (the ``ISONET_PEAK_LOG`` of bench/device/peak_hook:
``torch.cuda.max_memory_allocated``, the reserved memory, the resident set) and, with
``--card`` (lines ``UNIX_SECONDS USED_MIB`` sampled from nvidia-smi), the card's largest used
memory while the process ran (one process at a time: the card's is the process's).

``predict``: the whole ``predict`` process of both programs (start, imports, files, the
network) on random tomograms of ``--shapes``, even and odd halves as both programs' STARs of
``prepare_star`` list them, with the models of a side_by_side run (``--from-run``), in
alternating order for ``--reps`` rounds. A row is written before each process starts
(status ``running``) and rewritten when it ends, so a run cut short says where.

Both write ``--out`` (JSON) and a Markdown table beside it.
"""
from __future__ import annotations

import argparse
import glob
import json
import math
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from bench import side_by_side as sbs

OFFICIAL_AUTO_BATCH_ONE_GPU = 4
"""The official ``process_batch_size`` of ``batch_size="auto"`` with one GPU."""


def read_peaks(path: Optional[Path]) -> List[dict]:
    """The lines of an ``ISONET_PEAK_LOG`` (none when absent)."""
    if path is None or not Path(path).exists():
        return []
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def process_peak(peaks: List[dict], cwd: Path, command: str, card: Optional[np.ndarray] = None) -> dict:
    """The peaks of the last process run in ``cwd`` with ``command`` in its argv, and the card's
    largest used memory while it ran (``card``: rows of seconds and MiB)."""
    mine = [p for p in peaks if p.get("cwd") == str(cwd) and command in p.get("argv", [])]
    if not mine:
        return {}
    p = mine[-1]
    out = {k: p[k] for k in ("cuda_max_allocated_mib", "cuda_max_reserved_mib", "peak_rss_mib") if k in p}
    if card is not None and len(card):
        inside = card[(card[:, 0] >= p["start"]) & (card[:, 0] <= p["end"]), 1]
        out["card_used_mib"] = float(inside.max()) if inside.size else None
    return out


def read_card(path: Optional[Path]) -> Optional[np.ndarray]:
    """``UNIX_SECONDS USED_MIB`` lines as an (n, 2) array (None when absent or empty)."""
    if path is None or not Path(path).exists():
        return None
    rows = []
    for line in Path(path).read_text().splitlines():
        parts = line.replace(",", " ").split()
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except (ValueError, IndexError):
            continue
    return np.asarray(rows, float) if rows else None


def _train_folder(out: Path, geometry: str, label: str, program: str) -> Path:
    if program == "official":
        k = int(re.search(r"run (\d+)", label).group(1)) - 1
        return out / geometry / f"official_refine_{k}"
    seed = int(re.search(r"seed (\d+)", label).group(1))
    return out / geometry / f"ours_refine_seed{seed}"


def step_rows(runs: List[Path], peaks: List[dict], card: Optional[np.ndarray]) -> List[dict]:
    """One row per training run of ``runs`` (see the module docstring)."""
    rows = []
    for out in runs:
        if not out.exists():
            continue
        if not (out / "side_by_side.json").exists():
            rows.append({"run": out.name, "program": "-", "note": "no side_by_side.json (not run or cut short)"})
            continue
        report = json.loads((out / "side_by_side.json").read_text())
        st = report["header"]["settings"]
        subtomos = st.get("subtomos_per_epoch") or st["steps_per_epoch"] * (st["batch"] or 4)
        for r in report["rows"]:
            if r["program"] not in ("ours", "official") or not r["steps"] or not re.fullmatch(
                    r"refine, (run|seed) \d+(, .*)?", r["label"]) or "plain average" in r["label"]:
                continue
            folder = _train_folder(out, r["geometry"], r["label"], r["program"])
            batch = st["batch"]
            if not batch and r["program"] == "official":
                batch = OFFICIAL_AUTO_BATCH_ONE_GPU
            elif not batch:
                m = re.findall(r"batch (\d+), \d+ epoch", (folder / "log.txt").read_text(errors="replace"))
                batch = int(m[-1]) if m else math.ceil(subtomos * st["epochs"] / r["steps"])
            rows.append({"run": out.name, "program": r["program"], "arch": st["arch"], "cube": st["cube"],
                         "batch": batch, "batch_rule": "given" if st["batch"] else "auto", "steps": r["steps"],
                         "step_s": r["step_s"], "cubes_per_s": round(batch / r["step_s"], 2) if r["step_s"] else None,
                         "predict_process_s": r["predict_s"],
                         **process_peak(peaks, folder.absolute(), "refine", card)})
    for r in rows:   # ratios beside each of our rows: the official run of the same folder
        off = [o for o in rows if o["run"] == r["run"] and o["program"] == "official" and o.get("step_s")]
        if r["program"] == "ours" and off and r.get("step_s"):
            r["official_over_ours_per_step"] = round(off[0]["step_s"] / r["step_s"], 2)
            r["official_over_ours_per_cube"] = round(r["cubes_per_s"] / off[0]["cubes_per_s"], 2)
    return rows


def write(out: Path, rows: List[dict], columns: List[str]) -> None:
    """``out`` (JSON) and ``out`` with ``.md`` (``columns`` of each row)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("-" if r.get(c) is None else str(r.get(c)) for c in columns) + " |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


STEP_COLUMNS = ["run", "program", "arch", "cube", "batch", "batch_rule", "steps", "step_s", "cubes_per_s",
                "official_over_ours_per_step", "official_over_ours_per_cube", "cuda_max_allocated_mib",
                "cuda_max_reserved_mib", "card_used_mib", "peak_rss_mib", "predict_process_s", "note"]
PREDICT_COLUMNS = ["shape", "program", "rep", "model", "status", "process_s", "cuda_max_allocated_mib",
                   "card_used_mib", "peak_rss_mib", "note"]
ACQ = {"pixel_size_a": 8.0, "defocus_a": 30000.0, "cs_mm": 2.7, "voltage_kv": 300.0, "amplitude_contrast": 0.1,
       "tilt_min_deg": -60.0, "tilt_max_deg": 60.0}


def run_models(run: Path) -> Dict[str, str]:
    """The model files of a side_by_side run: ours (its last epoch) and the official one."""
    models = {}
    ours = sorted(glob.glob(str(run / "*" / "ours_refine_seed*" / "maps" / "network_*_epoch*.pt")))
    official = [m for w in sorted(glob.glob(str(run / "*" / "official_refine_*")))
                for m in sbs._official_models(Path(w))]
    if ours:
        models["ours"] = ours[-1]
    if official:
        models["official"] = official[-1]
    return models


def _tomogram(root: Path, shape: List[int]) -> Path:
    """Random even and odd halves of ``shape`` under ``root`` (kept for a rerun)."""
    from isonet2core.io.mrcio import write_mrc

    folder = root / "x".join(map(str, shape))
    rng = np.random.default_rng(0)
    for half in ("even", "odd"):
        path = folder / half / "tomo_001.mrc"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            part = folder / f"{half}.part.mrc"
            write_mrc(part, rng.standard_normal(tuple(shape), dtype=np.float32), ACQ["pixel_size_a"])
            part.rename(path)
    return folder


def predict_rows(a: argparse.Namespace) -> List[dict]:
    """Whole predict processes of both programs per shape (see the module docstring)."""
    models = run_models(a.from_run)
    official = sbs.Official(None, a.official_python) if a.official_python else None
    programs = [p for p in ("official", "ours") if p in models and (p == "ours" or official)]
    rows: List[dict] = []
    if not programs:
        rows.append({"program": "-", "status": "skipped", "note": f"no model in {a.from_run}"})
    if "official" not in programs:
        rows.append({"program": "official", "status": "skipped",
                     "note": "no --official-python" if official is None else f"no official model in {a.from_run}"})
    write(a.out, rows, PREDICT_COLUMNS)
    for shape in [[int(x) for x in s.split("x")] for s in a.shapes.split(",")]:
        folder = _tomogram(a.data, shape)
        for program in programs:
            work = (folder / program).absolute()
            work.mkdir(exist_ok=True)
            run = official if program == "official" else sbs._ours
            if not (work / "tomograms.star").exists():
                run(["prepare_star", *sbs._acq_args(ACQ, folder.absolute())], work, work / "log.txt")
        for rep in range(a.reps):
            for program in programs if rep % 2 == 0 else programs[::-1]:
                _predict_one(a, rows, folder, shape, program, rep, models[program], official)
    return rows


def _predict_one(a, rows: List[dict], folder: Path, shape, program: str, rep: int, model: str, official) -> None:
    work = (folder / program).absolute()
    row = {"shape": "x".join(map(str, shape)), "program": program, "rep": rep, "model": Path(model).name,
           "status": "running", "note": f"started {time.strftime('%H:%M:%S')}"}
    rows.append(row)
    write(a.out, rows, PREDICT_COLUMNS)
    args = ["predict", "tomograms.star", model, "--output_dir", f"pred{rep}"]
    try:
        if program == "official":
            seconds = official(args + (["--gpuID", "0"] if a.device == "cuda" else []), work, work / "log.txt")
        else:
            extra = ["--ncpus", str(a.ncpus)] if a.ncpus else []
            seconds = sbs._ours(args + ["--device", a.device, *extra], work, work / "log.txt")
        row.update(status="ok", process_s=round(seconds, 1), note="")
    except RuntimeError as exc:
        row.update(status="failed", note=str(exc))
    row.update(process_peak(read_peaks(a.peaks), work, "predict", read_card(a.card)))
    shutil.rmtree(work / f"pred{rep}", ignore_errors=True)
    write(a.out, rows, PREDICT_COLUMNS)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.process_rows", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    st = sub.add_parser("steps", help="per-step table of side_by_side runs")
    st.add_argument("--runs", required=True, help="side_by_side output folders, comma-separated")
    pr = sub.add_parser("predict", help="whole predict processes of both programs")
    pr.add_argument("--from-run", type=Path, required=True, help="a side_by_side output folder (its models)")
    pr.add_argument("--shapes", default="64x192x192,256x1024x1024")
    pr.add_argument("--reps", type=int, default=1)
    pr.add_argument("--data", type=Path, default=Path("/tmp/predict_processes"))
    pr.add_argument("--official-python", default=None)
    pr.add_argument("--device", default="cuda")
    pr.add_argument("--ncpus", type=int, default=0, help="ours' --ncpus (default: its own default)")
    for q in (st, pr):
        q.add_argument("--peaks", type=Path, default=None, help="ISONET_PEAK_LOG of the processes")
        q.add_argument("--card", type=Path, default=None, help="nvidia-smi samples: UNIX_SECONDS USED_MIB lines")
        q.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    if a.what == "steps":
        rows = step_rows([Path(r).absolute() for r in a.runs.split(",")], read_peaks(a.peaks), read_card(a.card))
        write(a.out, rows, STEP_COLUMNS)
    else:
        predict_rows(a)
    print(a.out.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
