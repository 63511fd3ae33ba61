"""IsoNet2 in Scipion, end to end, with nothing to configure: ``python -m isonet2scipion.demo``.

What it does, in a folder of its own (default ``./isonet2_demo``):

1. sets up a private Scipion (``SCIPION_HOME``/``SCIPION_USER_DATA`` under the folder,
   notifications off, ``SQLITE_JOURNAL_MODE=WAL``, a basic ``hosts.conf``) that runs the
   IsoNet2 core with the current interpreter (``ISONET2SCIPION_PYTHON``);
2. simulates a small cryo-ET data set with ground truth (:func:`isonet2core.simulation.simulate.
   simulate_dataset`: full, even and odd tomograms, IMOD defocus files, tilt angles) and the
   tilt-series stacks the CTF import attaches to (noise-free projections of the phantom;
   IsoNet2 reads only their angles) - or takes the user's data (``--data DIR``, layout in
   :mod:`isonet2scipion.examples.scripted_workflow`);
3. creates the Scipion project ``isonet2_demo`` and runs the chain of
   :func:`isonet2scipion.examples.scripted_workflow.build_workflow`: imports (tomograms full,
   even, odd; tilt series; IMOD CTF) -> make mask -> refine -> predict;
4. writes the report (:func:`isonet2core.report.run_report.make_report`: orthoslices, Fourier slices,
   FSC, numbers against the ground truth, loss curves) into ``<folder>/report``;
5. prints where everything is and, for simulated data, how close the raw and the corrected
   tomograms are to the ground truth.

The defaults finish in about ten minutes on 2 CPU cores; ``--quick`` is a one-to-two-minute
smoke run (tiny data, one epoch: it shows the machinery, not the quality). Every error is one
line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from isonet2core.nets.registry import arch_name
from isonet2scipion.constants import TOMOGRAMS_STAR
from isonet2scipion.examples.scripted_workflow import (
    ARCHS,
    DataLayout,
    TrainingSettings,
    WorkflowError,
    _gpu_ids,
    build_workflow,
    find_inputs,
    read_acquisition,
)

logger = logging.getLogger(__name__)

PROJECT_NAME = "isonet2_demo"
MARKER = ".isonet2_demo"            # marks a folder made by the demo (safe to clear)
_CHILD_FLAG = "_ISONET2_DEMO_FOLDER"  # set when the demo re-runs itself in its environment


@dataclass(frozen=True)
class DemoSize:
    """Data and training size of a run (shape ``(z, y, x)`` voxels)."""
    n_tomograms: int
    shape: Tuple[int, int, int]
    arch: str
    cube_size: int
    epochs: int
    number_subtomos: int
    batch_size: int


#: measured: 866 CPU-seconds in all (under 10 minutes on 2 idle cores; 28 minutes when the
#: cores were shared four ways); Pearson with the ground truth 0.31 -> 0.43 and 0.31 -> 0.42,
#: mean missing-wedge FSC 0.17 -> 0.36 and 0.17 -> 0.38
DEFAULT = DemoSize(n_tomograms=2, shape=(64, 128, 128), arch=arch_name("small"), cube_size=32,
                   epochs=10, number_subtomos=40, batch_size=4)
#: one to two minutes: the machinery only
QUICK = DemoSize(n_tomograms=1, shape=(32, 64, 64), arch=arch_name("small"), cube_size=16,
                 epochs=1, number_subtomos=8, batch_size=4)
PIXEL_SIZE_A = 10.0
DEFOCUS_A, DEFOCUS_STEP_A = 30000.0, 5000.0


class DemoError(Exception):
    """An error the demo reports in one line (exit code 2)."""


# ------------------------------------------------------------------ command line
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _cube(text: str) -> int:
    value = _positive_int(text)
    if value % 16:
        raise argparse.ArgumentTypeError(f"cube size must be a multiple of 16, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message):           # one line, exit 2 (argparse prints the usage too)
        print(f"{self.prog}: error: {message}".replace("\n", " "), file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m isonet2scipion.demo",
                description="Run IsoNet2 in a self-contained Scipion project on simulated data "
                            "(or on --data) and write a report.")
    p.add_argument("--output", default=PROJECT_NAME,
                   help=f"demo folder (Scipion home, data, project, report); default ./{PROJECT_NAME}")
    p.add_argument("--data", default=None,
                   help="your data folder instead of the simulated one: even/ and odd/ MRC "
                        "folders (same names) and/or full/, optional ctf/*.defocus with "
                        "tilt_series/<name>.mrc + .tlt, optional acquisition.json")
    p.add_argument("--pixel_size", type=float, default=None,
                   help="pixel size in Å of --data (default: acquisition.json or MRC header)")
    p.add_argument("--gpu", type=_gpu_ids, default=None,
                   help="GPU ids for training and prediction, e.g. 0 or 0,1 (default: CPU)")
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help=f"training epochs (default {DEFAULT.epochs}; --quick {QUICK.epochs})")
    p.add_argument("--arch", choices=ARCHS, default=None,
                   help=f"network (default {DEFAULT.arch})")
    p.add_argument("--cube_size", type=_cube, default=None,
                   help=f"training cube edge in voxels, a multiple of 16 (default "
                        f"{DEFAULT.cube_size}; --quick {QUICK.cube_size})")
    p.add_argument("--subtomos", type=_positive_int, default=None,
                   help=f"training cubes per tomogram and epoch (default "
                        f"{DEFAULT.number_subtomos})")
    p.add_argument("--threads", type=_positive_int, default=2,
                   help="CPU threads of each IsoNet2 process (default 2)")
    p.add_argument("--quick", action="store_true",
                   help="tiny data, one epoch (one to two minutes): checks the installation")
    return p


def resolve_size(args) -> DemoSize:
    base = QUICK if args.quick else DEFAULT
    return DemoSize(n_tomograms=base.n_tomograms, shape=base.shape,
                    arch=args.arch or base.arch, cube_size=args.cube_size or base.cube_size,
                    epochs=args.epochs or base.epochs,
                    number_subtomos=args.subtomos or base.number_subtomos,
                    batch_size=base.batch_size)


# ------------------------------------------------------------------ environment
def scipion_environment(folder: Path) -> Dict[str, str]:
    """The variables of the demo's private Scipion (pyworkflow reads them at import)."""
    python_bin = str(Path(sys.executable).parent)
    path = os.environ.get("PATH", "")
    return {
        "SCIPION_HOME": str(folder / "scipion"),
        "SCIPION_USER_DATA": str(folder / "ScipionUserData"),
        "SCIPION_DOMAIN": "pwem",
        "SCIPION_NOTIFY": "False",
        "SCIPION_TEST_NOSYNC": "1",
        "SQLITE_JOURNAL_MODE": "WAL",        # tomo's imports deadlock with the default journal
        "ISONET2SCIPION_PYTHON": sys.executable,    # the core runs in this interpreter
        # protocols are launched as `python3 .../pw_protocol_run.py`: this interpreter first
        "PATH": python_bin + (os.pathsep + path if path else ""),
        _CHILD_FLAG: str(folder),
    }


def prepare_folder(folder: Path) -> None:
    """Create the demo folder, or clear one that an earlier demo made. Refuses other
    non-empty folders (nothing of the user's is deleted)."""
    if folder.exists() and not folder.is_dir():
        raise DemoError(f"--output {folder} exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()):
        if not (folder / MARKER).is_file():
            raise DemoError(f"--output {folder} is not empty and was not made by the demo; "
                            "choose a new folder")
        for child in folder.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).write_text("made by python -m isonet2scipion.demo; cleared on its next run\n")


def _reexec_in_environment(folder: Path, argv: Sequence[str]) -> None:
    """pyworkflow reads its settings when first imported (importing this package already did):
    run the demo again in a fresh interpreter with the private Scipion's variables."""
    env = dict(os.environ, **scipion_environment(folder))
    os.execve(sys.executable, [sys.executable, "-m", "isonet2scipion.demo", *argv], env)


# ------------------------------------------------------------------ data
def simulate_data(folder: Path, size: DemoSize) -> Tuple[DataLayout, List[dict]]:
    """Simulated tomograms (``isonet2 simulate`` layout) plus ``tilt_series/`` stacks."""
    import numpy as np

    from isonet2core.io import mrcio
    from isonet2core.simulation import simulate
    cfg = simulate.SimulationConfig(shape=size.shape, pixel_size_a=PIXEL_SIZE_A,
                                    defocus_a=DEFOCUS_A, defocus_step_a=DEFOCUS_STEP_A, seed=3)
    records = simulate.simulate_dataset(folder, cfg, n_tomograms=size.n_tomograms)
    ts_dir = folder / "tilt_series"
    ts_dir.mkdir(exist_ok=True)
    angles = simulate.tilt_angles(cfg)
    matrix = simulate.projection_matrix(cfg.shape, angles)
    for rec in records:
        truth, _ = mrcio.read_mrc(rec["ground_truth"])
        stack = simulate.project(truth, matrix, len(angles))
        mrcio.write_mrc(ts_dir / f"{rec['name']}.mrc", np.ascontiguousarray(stack), PIXEL_SIZE_A)
        shutil.copyfile(rec["tilt_file"], ts_dir / f"{rec['name']}.tlt")
    return find_inputs(folder), records


# ------------------------------------------------------------------ results
def quality_summary(star_file: Path, ground_truth: Path) -> List[dict]:
    """Per tomogram: Pearson correlation and mean missing-wedge FSC of the raw map (full map,
    else the mean of the halves) and of the corrected map against the ground truth."""
    from isonet2core.imaging import metrics
    from isonet2core.io import mrcio, star
    from isonet2core.report import run_report
    table = star.TomogramsTable.read(star_file)
    rows = []
    for row in range(len(table)):
        maps = run_report.tomogram_maps(table, row, ground_truth)
        truth, _ = mrcio.read_mrc(maps.ground_truth)
        if maps.raw is not None:
            raw, _ = mrcio.read_mrc(maps.raw)
        else:
            raw = sum(mrcio.read_mrc(p)[0] for p in maps.raw_halves) / 2.0
        corrected, _ = mrcio.read_mrc(maps.outputs[0].path)
        tmin, tmax = maps.tilt_range_deg
        result = {"name": maps.name}
        for key, volume in (("raw", raw), ("corrected", corrected)):
            result[f"pearson_{key}"] = metrics.pearson(volume, truth)
            result[f"wedge_fsc_{key}"] = metrics.mean_fsc(*metrics.wedge_fsc(volume, truth,
                                                                             tmin, tmax))
        rows.append(result)
    return rows


def _relative(path) -> str:
    path = os.path.abspath(str(path))
    rel = os.path.relpath(path, os.environ.get("_ISONET2_DEMO_CWD", os.getcwd()))
    return path if rel.startswith("..") else rel


def run_demo(args, folder: Path) -> int:
    """The demo inside its environment (see module doc). Returns 0, raises DemoError."""
    import pyworkflow as pw
    from pyworkflow.project import Manager
    from pyworkflow.protocol.hosts import HostConfig

    start = time.time()
    size = resolve_size(args)
    log = (lambda line: print(f"[{time.time() - start:6.0f} s] {line}", flush=True))
    os.makedirs(os.path.dirname(pw.Config.SCIPION_HOSTS), exist_ok=True)
    HostConfig.writeBasic(pw.Config.SCIPION_HOSTS)

    records = []
    if args.data:
        layout = find_inputs(args.data)
        acq = read_acquisition(layout, args.pixel_size)
        ground_truth = None
        log(f"data: {len(layout.names)} tomograms in {layout.root}")
    else:
        log(f"simulating {size.n_tomograms} tomograms of {size.shape[0]} x {size.shape[1]} x "
            f"{size.shape[2]} voxels (z, y, x) with ground truth ...")
        layout, records = simulate_data(folder / "data", size)
        acq = read_acquisition(layout)
        ground_truth = folder / "data" / "ground_truth"

    training = TrainingSettings(arch=size.arch, cube_size=size.cube_size, epochs=size.epochs,
                                number_subtomos=size.number_subtomos,
                                # the GPU picks its batch from its memory; CPUs take 4
                                batch_size=None if args.gpu else size.batch_size,
                                ctf_mode="network",
                                padding_factor=1.5 if not args.quick else 1.0,
                                gpus=args.gpu, threads=args.threads).validate()
    log(f"training: {training.arch}, cube {training.cube_size}, {training.epochs} epochs x "
        f"{training.number_subtomos} cubes per tomogram, "
        + (f"GPU {','.join(map(str, args.gpu))}" if args.gpu else "CPU"))

    project = Manager().createProject(PROJECT_NAME)
    os.chdir(project.getPath())
    prots = build_workflow(project, layout, acq, training, log=log)
    refine, predict = prots["refine"], prots["predict"]
    predicted = predict.tomograms
    star_file = Path(predict._getExtraPath(TOMOGRAMS_STAR)).absolute()

    log("writing the report ...")
    from isonet2core.report.run_report import make_report
    pages = make_report(star_file, folder / "report",
                        model_dir=Path(refine._getExtraPath("model")).absolute(),
                        ground_truth_dir=ground_truth)
    elapsed = time.time() - start

    env = scipion_environment(folder)
    print()
    print(f"IsoNet2 demo finished in {elapsed / 60:.1f} min.")
    print(f"  Scipion project : {_relative(project.getPath())}")
    for prot in prots.values():
        print(f"    {prot.getObjLabel():<32} {_relative(prot.getWorkingDir())}")
    print("  corrected tomograms:")
    for tomo in predicted:
        print(f"    {_relative(tomo.getFileName())}")
    print(f"  model           : {_relative(refine.model.getPath())}")
    print(f"  report          : {_relative(pages.get('html', next(iter(pages.values()))))}")
    print(f"  open the project: SCIPION_HOME={_relative(env['SCIPION_HOME'])} "
          f"SCIPION_USER_DATA={_relative(env['SCIPION_USER_DATA'])} SCIPION_NOTIFY=False "
          f"SQLITE_JOURNAL_MODE=WAL ISONET2SCIPION_PYTHON={sys.executable} "
          f"{sys.executable} -m scipion project {PROJECT_NAME}")
    if ground_truth is not None:
        rows = quality_summary(star_file, ground_truth)
        print("  quality against the simulator's ground truth "
              "(Pearson; mean missing-wedge FSC):")
        for r in rows:
            print(f"    {r['name']}: Pearson raw {r['pearson_raw']:.3f} -> corrected "
                  f"{r['pearson_corrected']:.3f}; wedge FSC raw {r['wedge_fsc_raw']:.3f} -> "
                  f"corrected {r['wedge_fsc_corrected']:.3f}")
        (folder / "quality.json").write_text(json.dumps(rows, indent=2) + "\n")
        if args.quick:
            print("  (--quick trains one epoch on tiny data: run without --quick for a "
                  "meaningful correction)")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    folder = Path(args.output).absolute()
    try:
        if os.environ.get(_CHILD_FLAG) != str(folder):
            if args.data:
                find_inputs(args.data)           # fail early, before anything is written
            prepare_folder(folder)
            os.environ.setdefault("_ISONET2_DEMO_CWD", os.getcwd())
            _reexec_in_environment(folder, argv)
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        return run_demo(args, folder)
    except (DemoError, WorkflowError, ValueError, OSError) as exc:
        print(f"isonet2 demo: error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("isonet2 demo: interrupted", file=sys.stderr)
        return 2
    except Exception as exc:  # anything else (pyworkflow, sqlite...): still one line
        print(f"isonet2 demo: error: {type(exc).__name__}: {exc}".replace("\n", " "),
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
