"""``python -m bench.side_by_side``: ours beside the official IsoNet2 on realistic lamellae.

Both programs run as their users run them (whole processes: ``prepare_star``, ``refine`` or
``denoise``, ``predict``) on the same :mod:`isonet2core.simulation.lamella` tomograms with the same
settings (by default the official tutorial-like ones of issue 11: isonet2-n2n, CTF_mode
network, mw_weight 200, unet-small, cube 48, batch 4, 4 epochs of 56 steps). Every output map
is scored against the ground truth with the same metrics (scale-free, so the official
program's own normalisation does not matter): Pearson CC, the FSC 0.5 and 0.143 resolutions,
and the mean FSC in the measured region and in the missing wedge (:mod:`isonet2core.imaging.metrics`).
Time per step: the median of each program's per-step times (the official one's from its timing
log; ours from ``step_seconds`` of ``loss_history.json``), so neither counts its warm-up; "train
s" is the sum.

Reported per geometry (:data:`isonet2core.simulation.lamella.GEOMETRIES`):

* raw full map, Gaussian low-pass (best sigma) and Wiener deconvolution (best of a small grid),
  the baselines against the same truth;
* the official refine (no seed exists there: ``--official-repeats`` runs show its spread);
* ours at **equal steps** with each seed of ``--seeds`` (the spread), and at **equal wall time**
  (our checkpoint of the last epoch finished within the official run's training time; ours is
  trained for ``--wall-epochs`` epochs to have one);
* with ``--curve-epochs N``, the first seed's run and the first official run trained for N
  epochs and every epoch's model scored (quality against steps and training time: where each
  plateaus; the official program overwrites its model each epoch, :class:`CheckpointCopier`
  keeps each);
* ours with each ``--variant`` (one change at a time, seed 0);
* the denoise (n2n) pair with ``--denoise`` (ours with each seed of ``--seeds``);
* beside each of our maps, when predict wrote half maps, their plain mean ("plain average":
  the two half predictions averaged unweighted, as the IsoNet2 program makes its map; denoise
  models' output before FSC weighting), and for runs with ``--ema_decay`` the checkpoint
  predicted with its last weights instead of their average ("last weights"); beside each
  official refine, its model predicted by our predict as the program predicts and with our
  predict's defaults (what our predict step adds to the official network; ``--skip
  official-by-ours`` leaves them out, ``--skip last-weights`` the seeds' last-weights rows).

Settings: ``--batch 0`` leaves the batch size to each program's auto rule, ``--subtomos`` sets
the cubes per epoch, ``--own-defaults`` leaves CTF_mode and mw_weight to each program's defaults
(the speed rows of ``bench/device/issue31.sh``).

The official program is found through ``--official`` (the folder ``setup.sh`` of
``shared/tools/official-isonet2`` made; run with its ``run.sh``) or ``--official-python``
(an interpreter and ``PYTHONPATH`` that import ``IsoNet``, as on a GPU machine); without
either, its rows are skipped with a line saying so. Results: ``OUT/side_by_side.json`` and
``OUT/side_by_side.md``, rewritten after every run so an interrupted bench keeps its rows.
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

log = logging.getLogger("bench.side_by_side")
HERE = Path(__file__).resolve().parents[1]
SHARED_TOOL = HERE.parent / "shared" / "tools" / "official-isonet2"


SKIPPABLE = ("baselines", "official", "ours", "official-denoise", "ours-denoise", "official-by-ours",
             "last-weights")
"""The parts ``--skip`` can leave out."""


@dataclass
class Settings:
    arch: str = "unet-small"
    cube: int = 48
    batch: int = 4
    epochs: int = 4
    steps_per_epoch: int = 56
    mw_weight: float = 200.0
    ctf_mode: str = "network"
    device: str = "cpu"
    mixed_precision: bool = False
    ncpus: int = 2
    subtomos_per_epoch: int = 0    # 0: steps_per_epoch x batch
    own_defaults: bool = False     # leave CTF_mode and mw_weight to each program's defaults

    @property
    def subtomos(self) -> int:
        """Cubes per epoch (``batch`` 0, each program's auto batch size, counts as 4)."""
        return self.subtomos_per_epoch or self.steps_per_epoch * (self.batch or 4)


@dataclass
class Row:
    geometry: str
    label: str
    program: str
    steps: Optional[int] = None
    train_s: Optional[float] = None
    step_s: Optional[float] = None
    predict_s: Optional[float] = None
    scores: Dict[str, Optional[float]] = field(default_factory=dict)
    note: str = ""
    pred_dir: str = ""        # where our predict wrote the maps scored (ours)


# ------------------------------------------------------------------------------- scoring
def score(volume: np.ndarray, truth: np.ndarray, pixel_size_a: float, tilt_min: float,
          tilt_max: float) -> Dict[str, Optional[float]]:
    """The side-by-side metrics of a map against the ground truth (all scale-free)."""
    from isonet2core.imaging import metrics
    f, c = metrics.fsc(volume, truth)
    _, cw = metrics.wedge_fsc(volume, truth, tilt_min, tilt_max)
    _, cm = metrics.measured_fsc(volume, truth, tilt_min, tilt_max)

    def r(x, d=4):
        return None if x is None or not math.isfinite(float(x)) else round(float(x), d)

    def resolution(threshold):
        # the lowest shells hold the ice slab's step to vacuum, which the truth leaves out: the
        # crossing counted is the first one after the curve has reached the threshold
        above = np.flatnonzero(np.nan_to_num(c, nan=-1.0) >= threshold)
        if above.size == 0:
            return None
        return metrics.fsc_resolution(f[above[0]:], c[above[0]:], pixel_size_a, threshold=threshold)
    return {"pearson": r(metrics.pearson(volume, truth)),
            "fsc_05_a": r(resolution(0.5), 1),
            "fsc_0143_a": r(resolution(0.143), 1),
            "measured_fsc": r(metrics.mean_fsc(f, cm)),
            "wedge_fsc": r(metrics.mean_fsc(f, cw))}


def baselines(data: dict, geometry: str) -> List[Row]:
    """Raw map, best Gaussian low-pass and best Wiener deconvolution of the full map."""
    import scipy.ndimage

    from isonet2core.config import DeconvConfig, Microscope
    from isonet2core.steps.deconv import deconvolve

    full, truth, acq = data["full"], data["truth"], data["acq"]
    args = (acq["pixel_size_a"], acq["tilt_min_deg"], acq["tilt_max_deg"])
    rows = [Row(geometry, "raw (full map)", "-", scores=score(full, truth, *args))]
    best = max(((score(scipy.ndimage.gaussian_filter(full, s), truth, *args), s) for s in (0.7, 1.0, 1.5, 2.0)),
               key=lambda t: t[0]["pearson"])
    rows.append(Row(geometry, f"Gaussian low-pass (sigma {best[1]} px)", "-", scores=best[0]))
    mic = Microscope(pixel_size_a=acq["pixel_size_a"], defocus_a=acq["defocus_a"], voltage_kv=acq["voltage_kv"],
                     cs_mm=acq["cs_mm"], amplitude_contrast=acq["amplitude_contrast"],
                     tilt_min_deg=acq["tilt_min_deg"], tilt_max_deg=acq["tilt_max_deg"])
    best = max(((score(deconvolve(full, mic, DeconvConfig(snrfalloff=sf, deconvstrength=ds)), truth, *args), (sf, ds))
                for sf in (0.3, 0.6, 1.0) for ds in (0.5, 1.0)), key=lambda t: t[0]["pearson"])
    rows.append(Row(geometry, f"Wiener deconvolution (snrfalloff {best[1][0]}, deconvstrength {best[1][1]})",
                    "-", scores=best[0]))
    return rows


# ------------------------------------------------------------------------------- data
def make_data(root: Path, geometry: str, shape: Sequence[int], seed: int) -> dict:
    """The lamella of ``geometry`` (cached under ``root``) and its truth and acquisition."""
    from isonet2core.io.mrcio import read_mrc
    from isonet2core.simulation import lamella

    folder = root / f"{geometry}_{'x'.join(map(str, shape))}_seed{seed}"
    acq_file = folder / "acquisition.json"
    if not acq_file.exists():
        t0 = time.perf_counter()
        lamella.write_lamella_dataset(folder, lamella.geometry_config(geometry, shape=tuple(shape), seed=seed))
        log.info("simulated %s in %.0f s", folder, time.perf_counter() - t0)
    acq = json.loads(acq_file.read_text())
    acq["defocus_a"] = acq["config"]["defocus_a"]
    return {"folder": folder, "acq": acq,
            "full": read_mrc(folder / "full" / "tomo_001.mrc")[0],
            "truth": read_mrc(folder / "ground_truth" / "tomo_001.mrc")[0]}


def external_data(source: Path, root: Path) -> dict:
    """A lamella of another simulator laid out as ``shared/data/lamella-s1`` (``tomo_even.mrc``,
    ``tomo_odd.mrc``, ``tomo_full.mrc``, ``gt.mrc``, ``params.json``): linked into
    ``root/<name>/{even,odd,full}/tomo_001.mrc`` as our commands and the official program read
    folders. Its ground truth is protein bright and its tomograms protein dark: the truth is
    negated, so that the sign-sensitive scores (Pearson, FSC) compare like with like."""
    from isonet2core.io.mrcio import read_mrc

    params = json.loads((source / "params.json").read_text())
    folder = root / f"external_{source.name}"
    for half, name in (("even", "tomo_even.mrc"), ("odd", "tomo_odd.mrc"), ("full", "tomo_full.mrc")):
        link = folder / half / "tomo_001.mrc"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to((source / name).resolve())
    acq = {"pixel_size_a": params["pixel_size_A"], "defocus_a": params["defocus_A"],
           "voltage_kv": params["voltage_kV"], "cs_mm": params["cs_mm"],
           "amplitude_contrast": params["amplitude_contrast"], "tilt_min_deg": params["tilt_min_deg"],
           "tilt_max_deg": params["tilt_max_deg"]}
    return {"folder": folder, "acq": acq, "full": read_mrc(folder / "full" / "tomo_001.mrc")[0],
            "truth": -read_mrc(source / "gt.mrc")[0]}


# ------------------------------------------------------------------------------- running
def _run(cmd: List[str], cwd: Path, log_path: Path, env: Optional[dict] = None) -> float:
    t0 = time.perf_counter()
    with open(log_path, "a") as fh:
        fh.write("$ " + " ".join(shlex.quote(c) for c in cmd) + "\n")
        fh.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                              env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    text = log_path.read_text(errors="replace")
    if proc.returncode != 0 or "Traceback" in text.split("$ ")[-1]:
        raise RuntimeError(f"{cmd[:4]} failed (exit {proc.returncode}); see {log_path}")
    return seconds


class Official:
    """The official program, run unmodified: ``run.sh`` of a ``setup.sh`` folder, or a python
    that imports ``IsoNet`` (``PYTHONPATH`` set by the caller)."""

    def __init__(self, workdir: Optional[str], python: Optional[str]):
        if workdir:
            self.prefix = ["bash", str(SHARED_TOOL / "run.sh")]
            self.env = {"WORK": str(Path(workdir).absolute())}
            self.where = str(workdir)
        else:
            self.prefix = [python, "-m", "IsoNet.bin.isonet"]
            self.env = {}
            self.where = python

    def __call__(self, args: List[str], cwd: Path, log_path: Path, timing: Optional[Path] = None) -> float:
        env = dict(self.env)
        if timing is not None:
            env["ISONET_TIMING_LOG"] = str(timing)
        return _run(self.prefix + args, cwd, log_path, env)


def _official_step_times(timing: Path, epochs: int, until: Optional[float] = None) -> List[float]:
    """Optimiser step intervals from the timing log, without the extra step the official
    program takes at the end of every epoch (the ``epochs`` shortest intervals); with
    ``until`` (a ``time.perf_counter`` reading, the clock of the log), only the steps up to it."""
    if not timing.exists():
        return []
    stamps = [float(line.split()[1]) for line in timing.read_text().splitlines() if line.startswith("step ")]
    stamps = [t for t in stamps if until is None or t <= until]
    gaps = sorted(np.diff(stamps).tolist())
    return gaps[epochs:] if len(gaps) > 2 * epochs else gaps


class CheckpointCopier:
    """Keeps every version of a file that another process rewrites in place (the official
    program overwrites its model at the end of each epoch): while the ``with`` block runs, a
    thread polls ``path`` every ``poll_s`` and copies each new version, once it has stood
    unchanged for ``settle_s``, to ``dest/epochNNN.pt`` (1, 2, ...). ``copies`` lists
    ``(copy, written)`` with ``written`` the version's modification time on the
    ``time.perf_counter`` clock (the official timing log's). Versions written less than
    ``settle_s`` apart are seen as one (an epoch takes minutes here)."""

    def __init__(self, path: Path, dest: Path, poll_s: float = 1.0, settle_s: float = 2.0):
        import threading
        self.path, self.dest, self.poll_s, self.settle_s = Path(path), Path(dest), poll_s, settle_s
        self.copies: List[tuple] = []
        self._seen = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> CheckpointCopier:
        self.dest.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._poll(settled=True)          # the writer has exited: its last version is complete

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._poll(settled=False)

    def _poll(self, settled: bool) -> None:
        import shutil
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        version = (st.st_mtime_ns, st.st_size)
        if version == self._seen or not (settled or time.time() - st.st_mtime >= self.settle_s):
            return
        copy = self.dest / f"epoch{len(self.copies) + 1:03d}.pt"
        shutil.copyfile(self.path, copy)
        if (self.path.stat().st_mtime_ns, self.path.stat().st_size) != version:   # rewritten meanwhile
            copy.unlink()
            return
        self._seen = version
        self.copies.append((copy, time.perf_counter() - (time.time() - st.st_mtime)))


def _ours(args: List[str], cwd: Path, log_path: Path, env: Optional[dict] = None) -> float:
    return _run([sys.executable, "-m", "isonet2core"] + args, cwd, log_path, env)


def _acq_args(acq: dict, folder: Path) -> List[str]:
    return ["--even", str(folder / "even"), "--odd", str(folder / "odd"),
            "--pixel_size", str(acq["pixel_size_a"]), "--defocus", str(acq["defocus_a"]),
            "--cs", str(acq["cs_mm"]), "--voltage", str(acq["voltage_kv"]),
            "--ac", str(acq["amplitude_contrast"]), "--tilt_min", str(acq["tilt_min_deg"]),
            "--tilt_max", str(acq["tilt_max_deg"])]


def _train_args(s: Settings, method: str) -> List[str]:
    """The training options of both programs (batch 0: none, each program's auto batch size;
    ``own_defaults``: no CTF_mode and mw_weight, each program's own)."""
    args = ["--arch", s.arch, "--cube_size", str(s.cube), "--mixed_precision", str(s.mixed_precision),
            "--with_preview", "False", "--gpuID", "0" if s.device == "cuda" else "None"]
    args += ["--batch_size", str(s.batch)] if s.batch else []
    args += [] if s.own_defaults else ["--CTF_mode", s.ctf_mode]
    if method != "n2n":
        args += ["--method", method] + ([] if s.own_defaults else ["--mw_weight", str(s.mw_weight)])
    return args


def _official_models(work: Path) -> List[str]:
    """The model files an official run wrote (its ``_full`` model first choice)."""
    maps = work / "maps"
    return sorted(glob.glob(str(maps / "network_*_full.pt")) or glob.glob(str(maps / "network_*.pt")))


def run_official(official: Official, data: dict, s: Settings, work: Path, label: str, method: str,
                 curve_epochs: int = 0, curve_predict: str = "program") -> List[Row]:
    """Train the official program (``prepare_star``, ``refine`` or ``denoise``), predict with
    its model and score the map: ``[row]``. With ``curve_epochs``, train that long (at least
    ``s.epochs``) keeping the model of every epoch (:class:`CheckpointCopier`: the program
    overwrites it) and score each: the row at ``s.epochs`` first (labelled ``label``), then
    the others (``label, epoch k``). The program's cosine schedule spans ``save_interval``
    (10) epochs whatever ``--epochs`` is, so its model at epoch k of a longer run is the
    model of a k-epoch run. ``curve_predict="ours"`` predicts the curve's other epochs with
    our predict as the program predicts (:func:`official_as_program`: the same map to the
    third decimal of every score, in a fifth of the program's predict time on the CPU); the
    row at ``s.epochs`` keeps the program's own predict."""
    acq, geometry = data["acq"], data["geometry"]
    work.mkdir(parents=True, exist_ok=True)
    logp, timing = work / "log.txt", work / "timing.txt"
    timing.unlink(missing_ok=True)
    official(["prepare_star", *_acq_args(acq, data["folder"]), "--number_subtomos", str(s.subtomos)],
             work, logp)
    command = "denoise" if method == "n2n" else "refine"
    epochs = max(curve_epochs, s.epochs)
    args = [command, "tomograms.star", "--output_dir", "maps", "--epochs", str(epochs), *_train_args(s, method)]
    if s.device != "cuda":
        args = [a for a in args if a not in ("--gpuID", "None")]
    if curve_epochs:
        with CheckpointCopier(work / "maps" / f"network_{method}_{s.arch}_{s.cube}_full.pt", work / "curve") as cp:
            official(args, work, logp, timing)
        if len(cp.copies) != epochs:
            raise RuntimeError(f"kept {len(cp.copies)} models of the official {command}'s {epochs} epochs "
                               f"in {work / 'curve'}")
        models = [(e + 1, str(copy), written) for e, (copy, written) in enumerate(cp.copies)]
        models.sort(key=lambda m: m[0] != s.epochs)
    else:
        official(args, work, logp, timing)
        found = _official_models(work)
        if not found:
            raise RuntimeError(f"the official {command} wrote no network_*.pt in {work / 'maps'}")
        models = [(epochs, found[-1], None)]
    from isonet2core.io.mrcio import read_mrc
    rows = []
    for epoch, model, written in models:
        steps = _official_step_times(timing, epoch, until=written)
        pred = "pred" if written is None else f"pred_epoch{epoch:03d}"
        if curve_predict == "ours" and epoch != s.epochs:
            rows.append(official_as_program(data, s, work, model, work / pred,
                                            f"{label}, epoch {epoch}, predicted by ours as the program predicts",
                                            steps=len(steps), train_s=round(float(np.sum(steps)), 1)))
            continue
        pred_args = ["predict", "tomograms.star", model, "--output_dir", pred]
        if s.device == "cuda":
            pred_args += ["--gpuID", "0"]
        predict_s = official(pred_args, work, logp)
        vol = read_mrc(sorted(glob.glob(str(work / pred / "*.mrc")))[0])[0]
        rows.append(Row(geometry, label if epoch == s.epochs else f"{label}, epoch {epoch}", "official",
                        steps=len(steps), train_s=round(float(np.sum(steps)), 1),
                        step_s=round(float(np.median(steps)), 3) if steps else None, predict_s=round(predict_s, 1),
                        scores=score(vol, data["truth"], acq["pixel_size_a"], acq["tilt_min_deg"],
                                     acq["tilt_max_deg"])))
    return rows


def official_model_rows(data: dict, s: Settings, work: Path, label: str) -> List[Row]:
    """The official run's model predicted by ours: as the program predicts (the two half
    predictions averaged, unweighted: reproduces the program's map,
    bench/results/official_model_parity.md) and with our predict's defaults (the halves'
    average predicted, FSC-weighted): what our predict step adds to the official network
    (transparency rows)."""
    model = _official_models(work)[-1]
    out = _predict_with_ours(s, work, model, work / "ours_predict_fsc_weighted")
    return [official_as_program(data, s, work, model, work / "ours_predict", f"{label}, predicted by ours"),
            _map_row(data, out, f"{label}, predicted by ours (our predict's defaults)", "official")]


def official_as_program(data: dict, s: Settings, work: Path, model: str, out: Path, label: str, **kw) -> Row:
    """An official model predicted by ours as the program predicts (the two half predictions
    averaged, unweighted; bench/results/official_model_parity.md) into ``out``, scored."""
    _predict_with_ours(s, work, model, out, "--halves_input", "halves", "--fsc_weighting", "False")
    return _map_row(data, out, label, "official", pred_dir=str(out), **kw)


def _predict_with_ours(s: Settings, work: Path, model: str, out: Path, *options: str) -> Path:
    """Our ``predict`` of ``model`` on ``work``'s STAR into ``out`` (returned), with ``options``."""
    _ours(["predict", "tomograms.star", model, "--output_dir", str(out), "--device", s.device,
           "--ncpus", str(s.ncpus), *options], work, work / "log.txt")
    return out


def _map_row(data: dict, out_dir: Path, label: str, program: str, **kw) -> Row:
    """A row scoring the main map (not a half) in ``out_dir``."""
    from isonet2core.io.mrcio import read_mrc

    acq = data["acq"]
    vol = read_mrc(next(p for p in sorted(glob.glob(str(out_dir / "*.mrc"))) if "_half" not in p))[0]
    return Row(data["geometry"], label, program,
               scores=score(vol, data["truth"], acq["pixel_size_a"], acq["tilt_min_deg"], acq["tilt_max_deg"]), **kw)


def run_ours(data: dict, s: Settings, work: Path, label: str, method: str, *, seed: int = 0,
             epochs: Optional[int] = None, extra: Sequence[str] = (), env: Optional[dict] = None,
             evaluate_epochs: Sequence[int] = (), predict_extra: Sequence[str] = ()) -> Dict[int, Row]:
    """Train ours for ``epochs`` (default ``s.epochs``) with a checkpoint every epoch; predict
    (with ``predict_extra`` options) and score the checkpoints of ``evaluate_epochs`` (default:
    the last). Returns epoch -> row."""
    acq = data["acq"]
    work.mkdir(parents=True, exist_ok=True)
    logp = work / "log.txt"
    epochs = epochs or s.epochs
    _ours(["prepare_star", *_acq_args(acq, data["folder"]), "--number_subtomos", str(s.subtomos)], work, logp, env)
    command = "denoise" if method == "n2n" else "refine"
    args = [command, "tomograms.star", "--output_dir", "maps", "--epochs", str(epochs), "--save_interval", "1",
            "--seed", str(seed), "--ncpus", str(s.ncpus), "--device", s.device, *_train_args(s, method), *extra]
    if s.device != "cuda":
        args = [a for a in args if a not in ("--gpuID", "None")]
    train_wall = _ours(args, work, logp, env)
    evaluate = list(evaluate_epochs or [epochs])
    return {e: _score_epoch(data, s, work, e, label if len(evaluate) == 1 else f"{label}, epoch {e}", env=env,
                            note=f"process wall {train_wall:.0f} s", predict_extra=predict_extra)
            for e in evaluate}


# ------------------------------------------------------------------------------- report
COLUMNS = ("pearson", "fsc_05_a", "fsc_0143_a", "measured_fsc", "wedge_fsc")


def write_report(out: Path, rows: List[Row], header: dict) -> None:
    from isonet2core.io import atomic
    atomic.write_text(out / "side_by_side.json", json.dumps(
        {"header": header, "rows": [r.__dict__ for r in rows]}, indent=2) + "\n")
    lines = [f"Side by side ({header['started']}, {header['device']}): {header['settings']}", "",
             "| geometry | map | program | steps | train s | s/step | predict s | Pearson | FSC 0.5 (A) | "
             "FSC 0.143 (A) | measured FSC | wedge FSC | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vals = [r.scores.get(c) for c in COLUMNS]
        lines.append("| " + " | ".join(str(x) if x is not None else "-" for x in
                                       [r.geometry, r.label, r.program, r.steps, r.train_s, r.step_s, r.predict_s,
                                        *vals, r.note]) + " |")
    atomic.write_text(out / "side_by_side.md", "\n".join(lines) + "\n")


def parse_variant(text: str):
    """``LABEL=ARGS`` with ARGS the extra refine options, ``ENV:NAME=VALUE`` words (variables)
    and ``PREDICT:OPTION`` words (extra options of its predict). Returns (label, refine options,
    env, predict options)."""
    label, _, rest = text.partition("=")
    words = shlex.split(rest)
    env = dict(w[4:].split("=", 1) for w in words if w.startswith("ENV:"))
    predict = [w[8:] for w in words if w.startswith("PREDICT:")]
    return label, [w for w in words if not w.startswith(("ENV:", "PREDICT:"))], env, predict


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=HERE / "bench" / "results" / "side_by_side")
    p.add_argument("--data", type=Path, default=None, help="cache of simulated lamellae (default OUT/data)")
    p.add_argument("--official", default=None, help="folder made by shared/tools/official-isonet2/setup.sh")
    p.add_argument("--official-python", default=None, help="a python that imports IsoNet (GPU machines)")
    p.add_argument("--official-repeats", type=int, default=1)
    p.add_argument("--geometries", default="pm60,lamella",
                   help="pm60, lamella (ours, simulated) or dir:FOLDER (a lamella laid out as "
                        "shared/data/lamella-s1), comma-separated")
    p.add_argument("--shape", default="64x192x192")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--wall-epochs", type=int, default=0, help="train ours this long for the equal-wall row (0: no row)")
    p.add_argument("--curve-epochs", type=int, default=0,
                   help="train the first seed of ours and the first official run this long and score every "
                        "epoch (the quality-against-steps curves; 0: no curve)")
    p.add_argument("--official-curve-predict", choices=("program", "ours"), default="program",
                   help="predict the official curve's epochs (but the --epochs one) with the program's "
                        "predict, or with ours as the program predicts (the same scores, far faster on "
                        "the CPU)")
    p.add_argument("--variant", action="append", default=[],
                   help="LABEL=EXTRA ARGS (ENV:NAME=VALUE sets a variable, PREDICT:OPTION adds an option to its predict)")
    p.add_argument("--variant-geometries", default="pm60")
    p.add_argument("--ours-extra", default="", help="extra options of every run of ours (before a variant's)")
    p.add_argument("--denoise", action="store_true")
    p.add_argument("--only-variants", action="store_true", help="skip the seeds beyond the first")
    p.add_argument("--skip", default="", help="parts not run, comma-separated: baselines, official, ours "
                                              "(the official and our refine rows), official-denoise, "
                                              "ours-denoise (the --denoise rows; e.g. several bench "
                                              "processes sharing --data, each running a part), "
                                              "official-by-ours (our predict of the official model), "
                                              "last-weights (the seeds' last-weights rows)")
    for f in ("arch", "cube", "batch", "epochs", "steps_per_epoch", "mw_weight", "ctf_mode", "device", "ncpus"):
        p.add_argument("--" + f.replace("_", "-"), type=type(getattr(Settings, f)), default=getattr(Settings, f))
    p.add_argument("--subtomos", type=int, default=0,
                   help="cubes per epoch (default steps-per-epoch x batch; --batch 0 leaves the batch size "
                        "to each program's auto rule and counts as 4 here)")
    p.add_argument("--own-defaults", action="store_true",
                   help="leave CTF_mode and mw_weight to each program's defaults")
    p.add_argument("--mixed-precision", action="store_true")
    return p


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    s = Settings(**{f: getattr(a, f) for f in ("arch", "cube", "batch", "epochs", "steps_per_epoch", "mw_weight",
                                                "ctf_mode", "device", "ncpus", "mixed_precision", "own_defaults")},
                 subtomos_per_epoch=a.subtomos)
    out = a.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    official = Official(a.official, a.official_python) if (a.official or a.official_python) else None
    header = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "device": s.device,
              "settings": {**s.__dict__, "ours_extra": a.ours_extra},
              "official": official.where if official else None, "argv": sys.argv[1:]}
    if official is None:
        log.info("official IsoNet2 rows skipped: no --official folder or --official-python given")
    rows: List[Row] = []
    skip = {x for x in a.skip.split(",") if x}
    if skip - set(SKIPPABLE):
        p.error(f"--skip takes {', '.join(SKIPPABLE)}; got {a.skip!r}")
    for geometry in a.geometries.split(","):
        _geometry_rows(a, s, geometry, out, official, skip, rows, header)
    if (out / "side_by_side.md").exists():      # none when every part was skipped (data only)
        print((out / "side_by_side.md").read_text())
    return 0


def _geometry_rows(a: argparse.Namespace, s: Settings, geometry: str, out: Path,
                   official: Optional[Official], skip: set, rows: List[Row], header: dict) -> None:
    """Every row of one geometry (appended to ``rows``; the report rewritten after each)."""
    shape = [int(x) for x in a.shape.split("x")]
    seeds = [int(x) for x in a.seeds.split(",")] if "ours" not in skip else []
    ours_extra = shlex.split(a.ours_extra)
    if geometry.startswith("dir:"):          # another simulator's lamella (external_data)
        source = Path(geometry[len("dir:"):])
        data = external_data(source, a.data or out / "data")
        geometry = source.name
    else:
        data = make_data(a.data or out / "data", geometry, shape, seed=0)
    data["geometry"] = geometry
    if "baselines" not in skip:
        rows += baselines(data, geometry)
        write_report(out, rows, header)
    official_train_s = None
    if official is not None and "official" not in skip:
        for k in range(a.official_repeats):
            try:
                row, *curve = run_official(official, data, s, out / geometry / f"official_refine_{k}",
                                           f"refine, run {k + 1}", "isonet2-n2n",
                                           curve_epochs=a.curve_epochs if k == 0 else 0,
                                           curve_predict=a.official_curve_predict)
                official_train_s = official_train_s or row.train_s
                extra = [] if "official-by-ours" in skip or curve else official_model_rows(
                    data, s, out / geometry / f"official_refine_{k}", f"refine, run {k + 1}")
            except RuntimeError as exc:
                row, curve, extra = Row(geometry, f"refine, run {k + 1}", "official", note=str(exc)), [], []
            rows += [row, *extra, *curve]
            write_report(out, rows, header)
    first = True
    for seed in seeds[:1] if a.only_variants else seeds:
        epochs = max(a.wall_epochs, a.curve_epochs, s.epochs) if first else s.epochs
        curve = list(range(1, epochs + 1)) if first and a.curve_epochs else [s.epochs]
        res = run_ours(data, s, out / geometry / f"ours_refine_seed{seed}", f"refine, seed {seed}",
                       "isonet2-n2n", seed=seed, epochs=epochs, evaluate_epochs=curve, extra=ours_extra)
        rows += with_plain_average(data, res[s.epochs])
        rows += [res[e] for e in curve if e != s.epochs]
        if "last-weights" not in skip:
            rows += last_weights_rows(data, s, res, out / geometry / f"ours_refine_seed{seed}")
        if first and a.wall_epochs and official_train_s:
            work = out / geometry / f"ours_refine_seed{seed}"
            hist = json.loads((work / "maps" / "loss_history.json").read_text())
            cum = np.cumsum([float(h["seconds"]) for h in hist])
            e = int(max(1, np.searchsorted(cum, official_train_s, side="right")))
            label = f"refine, equal wall time ({e} epochs, seed {seed})"
            scored = res.get(e)
            rows += with_plain_average(data, Row(**{**scored.__dict__, "label": label}) if scored else
                                       _score_epoch(data, s, work, e, label))
        first = False
        write_report(out, rows, header)
    if geometry in a.variant_geometries.split(","):
        for text in a.variant:
            label, extra, env, predict_extra = parse_variant(text)
            work = out / geometry / f"variant_{len(rows)}"
            res = run_ours(data, s, work, f"refine, {label}", "isonet2-n2n", extra=ours_extra + extra, env=env,
                           predict_extra=predict_extra)
            rows += with_plain_average(data, res[s.epochs])
            rows += last_weights_rows(data, s, res, work, env=env, predict_extra=predict_extra)
            write_report(out, rows, header)
    if a.denoise:
        if official is not None and "official-denoise" not in skip:
            try:
                rows += run_official(official, data, s, out / geometry / "official_denoise", "denoise", "n2n")
            except RuntimeError as exc:
                rows.append(Row(geometry, "denoise", "official", note=str(exc)))
            write_report(out, rows, header)
        for seed in [] if "ours-denoise" in skip else [int(x) for x in a.seeds.split(",")]:
            work = out / geometry / ("ours_denoise" if seed == 0 else f"ours_denoise_seed{seed}")
            res = run_ours(data, s, work, f"denoise, seed {seed}", "n2n", seed=seed, extra=ours_extra)
            rows += with_plain_average(data, res[s.epochs])
            rows += last_weights_rows(data, s, res, work)
            write_report(out, rows, header)


def last_weights_rows(data: dict, s: Settings, rows: Dict[int, Row], work: Path,
                      env: Optional[dict] = None, predict_extra: Sequence[str] = ()) -> List[Row]:
    """For runs with ``--ema_decay``: the same checkpoints predicted with the trained (last)
    weights instead of their average, one row per row of ``rows`` (none without averaging)."""
    from isonet2core.io.model_file import ModelFile
    extra = []
    for epoch, row in rows.items():
        model = Path(sorted(glob.glob(str(work / "maps" / f"network_*_epoch{epoch:03d}.pt")))[0])
        averaged = ModelFile.load(model)
        if averaged.train_model_state is None:
            continue
        last = work / "last_weights" / model.name
        last.parent.mkdir(exist_ok=True)
        averaged.with_trained_weights().save(last)
        extra += with_plain_average(data, _score_epoch(data, s, work, epoch, f"{row.label} (last weights)",
                                                       env=env, model=last, predict_extra=predict_extra))
    return extra


def _score_epoch(data: dict, s: Settings, work: Path, epoch: int, label: str, *,
                 env: Optional[dict] = None, note: str = "", model: Optional[Path] = None,
                 predict_extra: Sequence[str] = ()) -> Row:
    """Predict and score our checkpoint of ``epoch`` in a run folder of :func:`run_ours`
    (``model``: another model file standing for it)."""
    from isonet2core.io.mrcio import read_mrc

    acq = data["acq"]
    logp = work / "log.txt"
    if model is None:
        model = Path(sorted(glob.glob(str(work / "maps" / f"network_*_epoch{epoch:03d}.pt")))[0])
    out_dir = work / f"pred_epoch{epoch:03d}" if model.parent.name == "maps" else model.parent / f"pred_epoch{epoch:03d}"
    predict_s = _ours(["predict", "tomograms.star", str(model), "--output_dir", str(out_dir), "--device", s.device,
                       "--ncpus", str(s.ncpus), *predict_extra], work, logp, env)
    history = json.loads((work / "maps" / "loss_history.json").read_text())
    trained = sum(float(h["seconds"]) for h in history[:epoch])
    steps = sum(int(h["steps"]) for h in history[:epoch])
    step_times = [t for h in history[:epoch] for t in h.get("step_seconds", [])]
    vol = read_mrc(next(p for p in sorted(glob.glob(str(out_dir / "*.mrc"))) if "_half" not in p))[0]
    return Row(data["geometry"], label, "ours", steps=steps, train_s=round(trained, 1),
               step_s=round(float(np.median(step_times)) if step_times else trained / max(steps, 1), 3),
               predict_s=round(predict_s, 1),
               scores=score(vol, data["truth"], acq["pixel_size_a"], acq["tilt_min_deg"], acq["tilt_max_deg"]),
               note=note, pred_dir=str(out_dir))


def with_plain_average(data: dict, row: Row) -> List[Row]:
    """``row`` and, when its prediction has half maps, their plain mean (the half predictions
    averaged unweighted; refine models' main map is predicted from the halves' average instead)."""
    from isonet2core.io.mrcio import read_mrc

    halves = sorted(glob.glob(str(Path(row.pred_dir) / "*_half[12].mrc"))) if row.pred_dir else []
    if len(halves) != 2:
        return [row]
    acq = data["acq"]
    vol = (read_mrc(halves[0])[0] + read_mrc(halves[1])[0]) * np.float32(0.5)
    return [row, Row(row.geometry, f"{row.label} (plain average)", row.program, steps=row.steps,
                     train_s=row.train_s, step_s=row.step_s,
                     scores=score(vol, data["truth"], acq["pixel_size_a"], acq["tilt_min_deg"], acq["tilt_max_deg"]))]


if __name__ == "__main__":
    sys.exit(main())
