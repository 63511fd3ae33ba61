"""``python -m bench.peers``: two peer programs beside ours on a lamella: DeepDeWedge and Topaz-Denoise 3D.

Both run as their users run them, as whole processes from their own virtual environments
outside the project (none of their code is in this repository), on a lamella laid out as
``shared/data/lamella-s1`` (:func:`bench.side_by_side.external_data`: ``even/``, ``odd/``,
``full/`` folders and the acquisition), and their maps are scored against the ground truth
with :func:`bench.side_by_side.score`, the side-by-side bench's metrics:

* **DeepDeWedge** (MLI-lab/DeepDeWedge; missing-wedge correction and denoising from even/odd
  half tomograms): ``ddw prepare-data``, ``ddw fit-model``, ``ddw refine-tomogram`` with a
  ``config.yaml`` as in its tutorial (``tutorial/config.yaml``): U-Net ``chans`` 64 with 3
  down-sampling layers, no dropout, Adam lr 4e-4, missing wedges of the inputs updated every 10
  epochs, validation every 10 epochs on a 10 % split, the last epoch's checkpoint refined
  (its Step 3: "the checkpoint corresponding to the highest epoch should give good results"),
  ``standardize_full_tomos`` on (its FAQ, for tomograms of small voxel values: this lamella's
  standard deviation is 0.01), and refine-tomogram with the normalisation measured while
  fitting (``recompute_normalization`` off: its recommended recomputation cuts unpadded 68-voxel
  cubes and fails on a lamella 64 voxels thick; the tomogram refined is the one fitted on).
  What differs from the tutorial is sized to this lamella and to our budget: the sub-tomograms are cubes of 48 (ours; its FAQ recommends 96 and not under 64,
  but the lamella is 64 voxels thick and DDW cuts sqrt(2) x larger cubes to rotate them: 68,
  which ``pad_before_subtomo_extraction`` reaches by a 4-voxel reflection), cut with stride 24
  (half a cube) in y and x (49 on a 64 x 192 x 192 lamella: 44 to fit, 5 to validate), batch 4
  (ours), 1 data-loading worker, ``mw_angle`` 180 - (tilt_max - tilt_min) (60 for +-60).
  **Training budget**: ours trains 224 optimiser steps of batch 4 at cube 48 (4 epochs of 56);
  a DDW epoch is one pass over its fixed set of fitting sub-tomograms, each rotated anew,
  ceil(N_fit / batch) optimiser steps of the same batch and cube size; ``--ddw-epochs 0`` (the
  default) takes the fewest whole epochs reaching the budget (:func:`ddw_epochs_for_budget`:
  44 sub-tomograms -> 11 steps per epoch -> 21 epochs, 231 steps), ``--ddw-epochs N`` sets N.
  Ours trains each cube pair both ways in a step (even -> odd and odd -> even), DDW one way
  (tomo0 -> tomo1): at equal steps DDW passes half as many cubes through its network (its
  network is larger: chans 64 against unet-small's 16 at full size). DDW's ``fit-model``
  asks for a GPU (``accelerator="gpu"``); on a machine without one a shim written into the run
  folder (:data:`DDW_CPU_SHIM`, put on ``PYTHONPATH``; DDW's files are not modified) gives
  PyTorch Lightning ``accelerator="cpu", devices=1`` instead. ``refine-tomogram`` runs on the
  CPU by itself.
* **Topaz-Denoise 3D** (PyPI ``topaz-em``) with its shipped pretrained 3D model ``unet-3d-10a``
  (trained on tomograms at about 10 A per voxel, the nearest to this lamella's 8 A; ``unet-3d-20a``
  is the other one), on the full map as its users denoise a tomogram: ``topaz denoise3d
  tomo.mrc -o OUT -m unet-3d-10a -d -1`` (patches of 96 with padding 48, its defaults). No
  training (0 steps): one pass of a pretrained network.

How to run: ``python -m bench.peers --lamella shared/data/lamella-s1 --out DIR`` (both peers, and
the raw full map as a reference row); ``--geometry pm60`` or ``--geometry lamella`` instead runs
them on our simulator's lamella of :mod:`bench.side_by_side` (data seed 0, ``--shape``, cached in
``--data``: pass the side-by-side bench's data folder to score the same tomogram as its rows).
The programs are found through ``--ddw`` (the ``ddw`` program of DDW's environment) or
``--ddw-python`` (a python that imports ``ddw``), and
``--topaz`` (the ``topaz`` program, or a python that imports ``topaz``: run as ``python -m
topaz.commands.denoise3d``, the same command's own entry point). By default the environments
of ``/work/peers`` (beside the project, see below) are used when they are there; without one,
its rows are skipped with a line saying so, as the official program's rows of
:mod:`bench.side_by_side` are. ``--skip ddw`` or ``--skip topaz`` leaves one out; the peers get
``--ncpus`` threads (``OMP_NUM_THREADS``, and Topaz's ``-j``).

Cost on the 2-core CPU of the project's machines (1 thread, the machine busy with another
bench): DDW 44 s per optimiser step at chans 64, cube 48, batch 4 (14.5 s at ``--ddw-chans 32``;
3.5 GB peak), so about 3 h for the 231 steps (1 h at chans 32) plus its two wedge updates and
the refinement; alone on a 2-core Intel Xeon with AMX, 2 threads: 20.3 s per step, 78 min of
training, refine-tomogram 189 s (2.1 GB peak); on our pm60 (``--geometry pm60``) 19.0 s per
step, 73 min of training, 171 s to refine; Topaz 5.5 min for the 64 x 192 x 192 lamella
(8 GB peak).

Results: ``OUT/peers.json`` and ``OUT/peers.md`` (per map: epochs, optimiser steps, time of
preparation, training and prediction, the whole wall time, and the scores), rewritten after
every peer so an interrupted bench keeps its rows; each program's work and log under
``OUT/ddw`` and ``OUT/topaz`` (``log.txt``; the DDW ``config.yaml``).

Setting the peers up (outside the repository; only PyPI is reached; CPU torch 2.13 as ours):

* DDW: ``fetch`` the public repository MLI-lab/DeepDeWedge, ``git --git-dir=MIRROR archive HEAD
  | tar -x -C /work/peers/ddw-src``; ``python3 -m venv /work/peers/ddw-venv``; in it ``pip
  install torch==2.13.0`` (the CPU wheel of this machine), ``pip install -c PIN -r REQS``
  with PIN holding ``torch==2.13.0`` and REQS its ``requirements.txt`` less the
  ``typing_extensions==4.9.0`` pin (torch 2.13 needs >= 4.10; nothing else changed: pytorch-
  lightning 1.8.0.post1, numpy 1.26.4 chosen by pip), ``pip install "setuptools<81"``
  (lightning_utilities 0.3 imports ``pkg_resources``, gone from setuptools 81 on), then ``pip
  install /work/peers/ddw-src``. Keep the venv's pip 23.2: pip >= 24.1 refuses
  pytorch-lightning 1.8's ``torch>=1.9.*`` requirement.
* Topaz: ``python3 -m venv /work/peers/topaz-venv``; ``pip install torch==2.13.0``; ``pip install
  -c PIN topaz-em`` (0.3.20, the pretrained ``unet-3d-10a``/``20a`` models are in the wheel);
  ``pip install "setuptools<81"`` (it loads its pretrained models through ``pkg_resources``). Its
  ``topaz`` program imports torchvision for its other commands, and PyPI's torchvision is built
  against CUDA torch (it fails to load beside the CPU wheel): run ``python -m
  topaz.commands.denoise3d`` (what ``--topaz`` does with a python).
"""
from __future__ import annotations

import argparse
import glob
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

log = logging.getLogger("bench.peers")
HERE = Path(__file__).resolve().parents[1]
PEERS = HERE.parent / "peers"
DEFAULT_LAMELLA = HERE.parent / "shared" / "data" / "lamella-s1"
OURS_BUDGET_STEPS = 224
"""Our side-by-side budget: 4 epochs of 56 optimiser steps, batch 4, cube 48."""

SKIPPABLE = ("raw", "ddw", "topaz")

DDW_CPU_SHIM = '''"""Runs DeepDeWedge's fit-model on the CPU (written by bench.peers; DDW's files are untouched).
Active only with DDW_CPU_SHIM=1: PyTorch Lightning's Trainer(accelerator="gpu", devices=[...])
becomes Trainer(accelerator="cpu", devices=1) (no distributed strategy)."""
import os

if os.environ.get("DDW_CPU_SHIM") == "1":
    import pytorch_lightning as pl

    _init = pl.Trainer.__init__

    def __init__(self, *args, **kwargs):
        if kwargs.get("accelerator") == "gpu":
            kwargs.update(accelerator="cpu", devices=1, strategy=None)
        _init(self, *args, **kwargs)

    pl.Trainer.__init__ = __init__
'''


# ------------------------------------------------------------------------------- settings
@dataclass
class DdwSettings:
    """DeepDeWedge's settings: its tutorial's (``tutorial/config.yaml``) but for the sizes and
    budget of this bench (see the module docstring)."""
    subtomo_size: int = 48
    stride: int = 24                 # sub-tomogram extraction stride, all three axes
    val_fraction: float = 0.1
    chans: int = 64
    num_downsample_layers: int = 3
    drop_prob: float = 0.0
    lr: float = 4e-4
    batch: int = 4
    epochs: int = 0                  # 0: the fewest whole epochs reaching budget_steps
    budget_steps: int = OURS_BUDGET_STEPS
    update_mw_every: int = 10
    check_val_every: int = 10
    standardize: bool = True
    num_workers: int = 1
    refine_batch: int = 10
    seed: int = 42


@dataclass
class TopazSettings:
    model: str = "unet-3d-10a"
    patch_size: int = 96
    padding: int = 48
    input: str = "full"              # the map denoised: full (its users' way), even or odd


@dataclass
class PeerRow:
    label: str
    program: str
    epochs: Optional[int] = None
    steps: Optional[int] = None
    prepare_s: Optional[float] = None
    train_s: Optional[float] = None
    step_s: Optional[float] = None   # train_s / steps (with DDW's validation and wedge updates)
    predict_s: Optional[float] = None
    wall_s: Optional[float] = None
    map: str = ""
    scores: Dict[str, Optional[float]] = field(default_factory=dict)
    note: str = ""


# ------------------------------------------------------------------------------- pure logic
def mw_angle(acq: dict) -> float:
    """DeepDeWedge's ``mw_angle``: the width of the missing wedge in degrees."""
    return 180.0 - (float(acq["tilt_max_deg"]) - float(acq["tilt_min_deg"]))


def ddw_steps_per_epoch(n_fitting: int, batch: int) -> int:
    """Optimiser steps of one DDW epoch: its loader keeps the last, smaller batch."""
    if n_fitting < 1 or batch < 1:
        raise ValueError(f"no DDW epoch with {n_fitting} sub-tomograms and batch {batch}")
    return math.ceil(n_fitting / batch)


def ddw_epochs_for_budget(n_fitting: int, batch: int, budget_steps: int = OURS_BUDGET_STEPS) -> int:
    """The fewest whole DDW epochs whose optimiser steps reach ``budget_steps``."""
    return max(1, math.ceil(budget_steps / ddw_steps_per_epoch(n_fitting, batch)))


def ddw_config(s: DdwSettings, even: Path, odd: Path, acq: dict, project: Path, epochs: int) -> dict:
    """The ``config.yaml`` of a DDW run (its tutorial's layout: ``shared`` and one section per
    command). ``gpu`` is only in ``fit_model`` (required there); refine-tomogram runs on the
    CPU without it (``--gpu 0`` on its command line to use a GPU)."""
    return {
        "shared": {"project_dir": str(project), "tomo0_files": [str(even)], "tomo1_files": [str(odd)],
                   "subtomo_size": s.subtomo_size, "mw_angle": int(round(mw_angle(acq))),
                   "standardize_full_tomos": s.standardize, "num_workers": s.num_workers, "seed": s.seed},
        "prepare_data": {"subtomo_extraction_strides": [s.stride] * 3, "val_fraction": s.val_fraction,
                         "pad_before_subtomo_extraction": True},
        "fit_model": {"unet_params_dict": {"chans": s.chans, "num_downsample_layers": s.num_downsample_layers,
                                           "drop_prob": s.drop_prob},
                      "adam_params_dict": {"lr": s.lr}, "num_epochs": epochs, "batch_size": s.batch,
                      "gpu": [0], "update_subtomo_missing_wedges_every_n_epochs": s.update_mw_every,
                      "check_val_every_n_epochs": s.check_val_every,
                      # checkpoints kept: the last epoch's (refined) and the best by each loss
                      "save_model_every_n_epochs": epochs, "save_n_models_with_lowest_val_loss": 1,
                      "save_n_models_with_lowest_fitting_loss": 1, "logger": "csv"},
        # the normalisation measured while fitting (its own recommendation is to measure it again
        # per tomogram, which matters for tomograms it was not fitted on; that pass cuts unpadded
        # sqrt(2) x larger cubes, 68 for 48, and fails on a lamella 64 voxels thick)
        "refine_tomogram": {"batch_size": s.refine_batch, "recompute_normalization": False},
    }


def program_prefix(path: Optional[str], module: str, command: Sequence[str]) -> Optional[List[str]]:
    """The command line that starts a peer: a python runs ``-m module``, anything else is the
    program itself followed by ``command`` (e.g. ``topaz denoise3d``). None: no program."""
    if not path:
        return None
    if Path(path).name.startswith("python"):
        return [path, "-m", module]
    return [path, *command]


def default_program(*candidates: Path) -> Optional[str]:
    """The first of ``candidates`` that exists (the environments of ``/work/peers``)."""
    return next((str(c) for c in candidates if c.exists()), None)


# ------------------------------------------------------------------------------- running
def _peer_env(ncpus: int, **extra: str) -> dict:
    return {"OMP_NUM_THREADS": str(ncpus), "MKL_NUM_THREADS": str(ncpus), "PYTHONPATH": "", "MPLBACKEND": "Agg",
            **extra}


def _scores(path: Path, data: dict) -> Dict[str, Optional[float]]:
    from bench.side_by_side import score
    from isonet2core.io.mrcio import read_mrc
    acq = data["acq"]
    return score(read_mrc(path)[0], data["truth"], acq["pixel_size_a"], acq["tilt_min_deg"], acq["tilt_max_deg"])


def run_ddw(prefix: List[str], data: dict, s: DdwSettings, work: Path, *, device: str = "cpu", ncpus: int = 2,
            score_map: bool = True) -> PeerRow:
    """DeepDeWedge's three commands on ``data`` (:func:`bench.side_by_side.external_data`) in
    ``work``: the refined map, its scores, epochs, optimiser steps and times."""
    from bench.side_by_side import _run
    folder = data["folder"]
    work = work.absolute()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    logp, project = work / "log.txt", work / "project"
    env = _peer_env(ncpus)
    if device == "cpu":
        shim = work / "cpu_shim"
        shim.mkdir()
        (shim / "sitecustomize.py").write_text(DDW_CPU_SHIM)
        env.update(PYTHONPATH=str(shim), DDW_CPU_SHIM="1", CUDA_VISIBLE_DEVICES="")
    even, odd = (folder / h / "tomo_001.mrc" for h in ("even", "odd"))
    cfg = work / "config.yaml"

    def write_config(epochs: int) -> None:       # JSON is YAML
        cfg.write_text(json.dumps(ddw_config(s, even, odd, data["acq"], project, epochs), indent=2) + "\n")

    write_config(max(s.epochs, 1))
    prepare_s = _run([*prefix, "prepare-data", "--config", str(cfg)], work, logp, env)
    n_fit = len(os.listdir(project / "subtomos" / "fitting_subtomos" / "subtomo0"))
    n_val = len(os.listdir(project / "subtomos" / "val_subtomos" / "subtomo0"))
    epochs = s.epochs or ddw_epochs_for_budget(n_fit, s.batch, s.budget_steps)
    steps = epochs * ddw_steps_per_epoch(n_fit, s.batch)
    write_config(epochs)
    log.info("DDW: %d fitting + %d validation sub-tomograms, %d epochs = %d steps of batch %d", n_fit, n_val,
             epochs, steps, s.batch)
    train_s = _run([*prefix, "fit-model", "--config", str(cfg)], work, logp, env)
    ckpts = sorted(glob.glob(str(project / "logs" / "version_*" / "checkpoints" / "epoch" / "epoch=*.ckpt")),
                   key=lambda p: int(Path(p).stem.split("=")[1]))
    if not ckpts:
        raise RuntimeError(f"DDW fit-model wrote no epoch checkpoint under {project / 'logs'}; see {logp}")
    refine = [*prefix, "refine-tomogram", "--config", str(cfg), "--model-checkpoint-file", ckpts[-1],
              "--output-dir", str(work / "refined")]
    predict_s = _run(refine + (["--gpu", "0"] if device == "cuda" else []), work, logp, env)
    out = sorted(glob.glob(str(work / "refined" / "*_refined.mrc")))
    if not out:
        raise RuntimeError(f"DDW refine-tomogram wrote no map in {work / 'refined'}; see {logp}")
    return PeerRow(f"DeepDeWedge (chans {s.chans}, cube {s.subtomo_size}, batch {s.batch})", "ddw", epochs=epochs,
                   steps=steps, prepare_s=round(prepare_s, 1), train_s=round(train_s, 1),
                   step_s=round(train_s / steps, 3), predict_s=round(predict_s, 1),
                   wall_s=round(prepare_s + train_s + predict_s, 1), map=out[0],
                   scores=_scores(Path(out[0]), data) if score_map else {},
                   note=f"{n_fit} fitting + {n_val} validation sub-tomograms; checkpoint {Path(ckpts[-1]).name}")


def run_topaz(prefix: List[str], data: dict, s: TopazSettings, work: Path, *, device: str = "cpu",
              ncpus: int = 2, score_map: bool = True) -> PeerRow:
    """Topaz-Denoise 3D's pretrained model on the ``s.input`` map of ``data`` in ``work``."""
    from bench.side_by_side import _run
    work = work.absolute()
    work.mkdir(parents=True, exist_ok=True)
    source = data["folder"] / s.input / "tomo_001.mrc"
    out_dir = work / "denoised"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    cmd = [*prefix, str(source), "-o", str(out_dir), "-m", s.model, "-s", str(s.patch_size),
           "-p", str(s.padding), "-d", "0" if device == "cuda" else "-1", "-j", str(ncpus)]
    wall = _run(cmd, work, work / "log.txt", _peer_env(ncpus))
    out = out_dir / source.name
    if not out.exists():
        raise RuntimeError(f"topaz denoise3d wrote no {out}; see {work / 'log.txt'}")
    return PeerRow(f"Topaz-Denoise 3D ({s.model}, {s.input} map)", "topaz", epochs=0, steps=0, train_s=0.0,
                   predict_s=round(wall, 1), wall_s=round(wall, 1), map=str(out),
                   scores=_scores(out, data) if score_map else {}, note="pretrained, no training")


# ------------------------------------------------------------------------------- report
COLUMNS = ("pearson", "fsc_05_a", "fsc_0143_a", "measured_fsc", "wedge_fsc")


def write_report(out: Path, rows: List[PeerRow], header: dict) -> None:
    from isonet2core.io import atomic
    atomic.write_text(out / "peers.json", json.dumps({"header": header, "rows": [asdict(r) for r in rows]},
                                                     indent=2) + "\n")
    lines = [f"Peers ({header['started']}, {header['device']}, {header['lamella']})", "",
             "| map | program | epochs | steps | prepare s | train s | s/step | predict s | wall s | Pearson | "
             "FSC 0.5 (A) | FSC 0.143 (A) | measured FSC | wedge FSC | note |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        vals = [r.label, r.program, r.epochs, r.steps, r.prepare_s, r.train_s, r.step_s, r.predict_s, r.wall_s,
                *[r.scores.get(c) for c in COLUMNS], r.note]
        lines.append("| " + " | ".join("-" if v is None else str(v) for v in vals) + " |")
    atomic.write_text(out / "peers.md", "\n".join(lines) + "\n")


def build_parser() -> argparse.ArgumentParser:
    from isonet2core.simulation.lamella import GEOMETRIES
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lamella", type=Path, default=DEFAULT_LAMELLA,
                   help="a lamella laid out as shared/data/lamella-s1 (tomo_even/odd/full.mrc, gt.mrc, params.json)")
    p.add_argument("--geometry", choices=tuple(GEOMETRIES), default=None,
                   help="instead of --lamella: our simulator's lamella of bench.side_by_side (data seed 0, "
                        "--shape), simulated into --data or read from it where it is cached there")
    p.add_argument("--shape", default="64x192x192", help="z x y x x of --geometry's lamella")
    p.add_argument("--out", type=Path, default=HERE / "bench" / "results" / "peers")
    p.add_argument("--data", type=Path, default=None, help="where the lamella's folders are linked (default OUT/data)")
    p.add_argument("--ddw", default=None, help="the ddw program of DeepDeWedge's environment "
                                               f"(default {PEERS / 'ddw-venv/bin/ddw'} when it is there)")
    p.add_argument("--ddw-python", default=None, help="a python that imports ddw (run as python -m ddw.app)")
    p.add_argument("--topaz", default=None, help="the topaz program or a python that imports topaz "
                                                 f"(default {PEERS / 'topaz-venv/bin/python'} when it is there)")
    p.add_argument("--ddw-epochs", type=int, default=0,
                   help="DDW epochs (0: the fewest whole epochs reaching --budget-steps optimiser steps)")
    p.add_argument("--budget-steps", type=int, default=OURS_BUDGET_STEPS,
                   help="our training budget in optimiser steps (side_by_side: 4 epochs of 56)")
    p.add_argument("--ddw-batch", type=int, default=DdwSettings.batch)
    p.add_argument("--ddw-cube", type=int, default=DdwSettings.subtomo_size)
    p.add_argument("--ddw-stride", type=int, default=DdwSettings.stride)
    p.add_argument("--ddw-chans", type=int, default=DdwSettings.chans,
                   help="U-Net channels at full size (its tutorial: 64; its FAQ: 32 is similar and faster)")
    p.add_argument("--ddw-workers", type=int, default=DdwSettings.num_workers)
    p.add_argument("--topaz-model", default=TopazSettings.model, help="unet-3d-10a, unet-3d-20a or a model file")
    p.add_argument("--topaz-input", default=TopazSettings.input, choices=("full", "even", "odd"))
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--ncpus", type=int, default=2, help="threads of each peer (OMP_NUM_THREADS, topaz -j)")
    p.add_argument("--skip", default="", help=f"parts not run, comma-separated: {', '.join(SKIPPABLE)}")
    return p


def main(argv=None) -> int:
    p = build_parser()
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    skip = {x for x in a.skip.split(",") if x}
    if skip - set(SKIPPABLE):
        p.error(f"--skip takes {', '.join(SKIPPABLE)}; got {a.skip!r}")
    from bench.side_by_side import external_data, make_data
    out = a.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    root = (a.data or out / "data").absolute()
    if a.geometry:
        data = make_data(root, a.geometry, [int(x) for x in a.shape.split("x")], seed=0)
    else:
        data = external_data(a.lamella.absolute(), root)
    ddw = ([a.ddw] if a.ddw else program_prefix(a.ddw_python, "ddw.app", []) if a.ddw_python else
           program_prefix(default_program(PEERS / "ddw-venv" / "bin" / "ddw"), "ddw.app", []))
    topaz = program_prefix(a.topaz or default_program(PEERS / "topaz-venv" / "bin" / "python"),
                           "topaz.commands.denoise3d", ["denoise3d"])
    ds = DdwSettings(subtomo_size=a.ddw_cube, stride=a.ddw_stride, chans=a.ddw_chans, batch=a.ddw_batch,
                     epochs=a.ddw_epochs, budget_steps=a.budget_steps, num_workers=a.ddw_workers)
    ts = TopazSettings(model=a.topaz_model, input=a.topaz_input)
    header = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "device": a.device, "lamella": a.geometry or str(a.lamella),
              "ddw": ddw, "topaz": topaz, "ddw_settings": asdict(ds), "topaz_settings": asdict(ts),
              "ncpus": a.ncpus, "argv": sys.argv[1:] if argv is None else list(argv)}
    rows: List[PeerRow] = []
    if "raw" not in skip:
        rows.append(PeerRow("raw (full map)", "-", scores=_scores(data["folder"] / "full" / "tomo_001.mrc", data)))
        write_report(out, rows, header)
    for name, prefix, run in (("ddw", ddw, lambda: run_ddw(ddw, data, ds, out / "ddw", device=a.device,
                                                             ncpus=a.ncpus)),
                              ("topaz", topaz, lambda: run_topaz(topaz, data, ts, out / "topaz", device=a.device,
                                                                 ncpus=a.ncpus))):
        if name in skip:
            continue
        if prefix is None:
            option = "--ddw or --ddw-python" if name == "ddw" else "--topaz"
            log.info("%s rows skipped: no %s given and no environment in %s", name, option, PEERS)
            continue
        try:
            rows.append(run())
        except RuntimeError as exc:
            rows.append(PeerRow(name, name, note=str(exc)))
        write_report(out, rows, header)
    if (out / "peers.md").exists():
        print((out / "peers.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
