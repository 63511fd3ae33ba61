"""A scripted Scipion workflow with IsoNet2, written with the pyworkflow project API.

The chain (the same graph as ``templates/isonet2_standard.json.template``):

1. tomo - import tomograms: the full tomograms, the even halves and the odd halves (three sets;
   tomo's tomogram import cannot attach half maps, so the halves are paired by tsId);
2. tomo - import tilt series + import tomo CTFs from IMOD ``.defocus`` files (optional: the CTF
   import attaches the estimations to tilt series; IsoNet2 reads only the defocus nearest 0°);
3. isonet2 - make mask (on the full tomograms; cubes are then drawn where there is specimen);
4. isonet2 - refine (isonet2-n2n on the even/odd halves, with the masks and the CTF);
5. isonet2 - predict (the trained model applied to the halves: corrected tomograms).

Data folder layout (what :func:`find_inputs` accepts; file names are the tsIds):

- ``even/*.mrc`` and ``odd/*.mrc`` (same names in both) and/or ``full/*.mrc``;
- optional ``ctf/<name>.defocus`` (IMOD) with ``tilt_series/<name>.mrc`` stacks and their
  ``tilt_series/<name>.tlt`` tilt angles (needed by the CTF import);
- optional ``acquisition.json`` (as ``isonet2 simulate`` writes it: pixel size, tilt range
  and step, voltage, Cs, amplitude contrast); else the values given to :class:`Acquisition`.

Run it inside a Scipion installation (the environment of ``scipion3`` or ``python -m scipion``)::

    python -m scipion python -m isonet2scipion.examples.scripted_workflow MY_PROJECT DATA_DIR \\
        --epochs 50 --cube_size 96 --gpu 0

(``python -m isonet2scipion.demo`` runs the same code in a self-contained Scipion folder.)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

logger = logging.getLogger(__name__)

MAP_PATTERN = "*.mrc"
ACQUISITION_FILE = "acquisition.json"
from isonet2core.nets.registry import DEFAULT_ARCH
from isonet2scipion.constants import ARCH_CHOICES

ARCHS = tuple(ARCH_CHOICES)
CTF_MODES = ("None", "phase_only", "wiener", "network")


class WorkflowError(RuntimeError):
    """A step of the workflow cannot run or failed; the message is one line naming it."""


# ------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class DataLayout:
    """The folders of a data set (absolute paths; None where absent) and its tomogram names."""
    root: Path
    names: Tuple[str, ...]
    full: Optional[Path] = None
    even: Optional[Path] = None
    odd: Optional[Path] = None
    ctf: Optional[Path] = None
    tilt_series: Optional[Path] = None

    @property
    def has_halves(self) -> bool:
        return self.even is not None and self.odd is not None


def _stems(folder: Path) -> List[str]:
    return sorted(p.name[:-len(".mrc")] for p in folder.glob(MAP_PATTERN) if p.is_file())


def find_inputs(data_dir) -> DataLayout:
    """Check a data folder (layout in the module doc) and return its layout.

    :raises FileNotFoundError: the folder does not exist.
    :raises ValueError: naming what is missing or unpaired.
    """
    root = Path(data_dir).absolute()
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    folders = {name: root / name for name in ("full", "even", "odd", "ctf", "tilt_series")}
    present = {name: path for name, path in folders.items() if path.is_dir()}
    maps = {name: _stems(present[name]) for name in ("full", "even", "odd") if name in present}
    maps = {name: stems for name, stems in maps.items() if stems}
    if ("even" in maps) != ("odd" in maps):
        raise ValueError(f"{root}: give both even/ and odd/ MRC folders, or neither")
    if not maps:
        raise ValueError(f"{root}: no tomograms; expected even/*.mrc and odd/*.mrc (same names) "
                         "and/or full/*.mrc")
    if "even" in maps and maps["even"] != maps["odd"]:
        unpaired = sorted(set(maps["even"]) ^ set(maps["odd"]))
        raise ValueError(f"{root}: even/ and odd/ must hold the same file names; unpaired: "
                         f"{', '.join(unpaired[:5])}")
    if "full" in maps and "even" in maps and maps["full"] != maps["even"]:
        raise ValueError(f"{root}: full/ and even/ must hold the same file names")
    names = tuple(maps.get("even") or maps["full"])
    ctf = tilt_series = None
    if "ctf" in present:
        missing = [n for n in names if not (present["ctf"] / f"{n}.defocus").is_file()]
        if missing:
            raise ValueError(f"{present['ctf']}: no IMOD defocus file for {', '.join(missing[:5])} "
                             "(expected <name>.defocus)")
        ts = present.get("tilt_series")
        lacking = [n for n in names if ts is None or not (ts / f"{n}.mrc").is_file()
                   or not (ts / f"{n}.tlt").is_file()]
        if lacking:
            raise ValueError(f"{root}: the CTF import attaches CTFs to tilt series; put "
                             f"tilt_series/<name>.mrc and tilt_series/<name>.tlt for "
                             f"{', '.join(lacking[:5])} (or remove ctf/)")
        ctf, tilt_series = present["ctf"], ts
    return DataLayout(root=root, names=names, full=present["full"] if "full" in maps else None,
                      even=present.get("even") if "even" in maps else None,
                      odd=present.get("odd") if "odd" in maps else None,
                      ctf=ctf, tilt_series=tilt_series)


@dataclass(frozen=True)
class Acquisition:
    """Microscope values the imports need (pixel size in Å, angles in degrees, kV, mm)."""
    pixel_size_a: float
    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0
    tilt_step_deg: float = 3.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1

    @classmethod
    def from_json(cls, path) -> Acquisition:
        """Values of an ``acquisition.json`` written by ``isonet2 simulate``."""
        try:
            data = json.loads(Path(path).read_text())
            return cls(**{k: float(data[k]) for k in (
                "pixel_size_a", "tilt_min_deg", "tilt_max_deg", "tilt_step_deg", "voltage_kv",
                "cs_mm", "amplitude_contrast")})
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not an acquisition file of isonet2 simulate ({exc})") from None


def read_acquisition(layout: DataLayout, pixel_size_a: Optional[float] = None,
                     **overrides) -> Acquisition:
    """The acquisition of a data folder: its ``acquisition.json`` when present, else the pixel
    size of the first map's header; ``pixel_size_a`` and ``overrides`` (fields of
    :class:`Acquisition`) replace what was read."""
    json_path = layout.root / ACQUISITION_FILE
    if json_path.is_file():
        acq = Acquisition.from_json(json_path)
    else:
        from isonet2core.io.mrcio import read_header
        folder = layout.even or layout.full
        acq = Acquisition(pixel_size_a=read_header(folder / f"{layout.names[0]}.mrc").voxel_size_a)
    values = {k: v for k, v in overrides.items() if v is not None}
    if pixel_size_a is not None:
        values["pixel_size_a"] = pixel_size_a
    acq = Acquisition(**{**acq.__dict__, **values})
    if not acq.pixel_size_a > 0:
        raise ValueError(f"the pixel size must be positive, got {acq.pixel_size_a} Å "
                         "(set --pixel_size)")
    return acq


@dataclass(frozen=True)
class TrainingSettings:
    """What refine and predict are run with (IsoNet2 names). ``gpus``: GPU ids, or None to
    run on the CPU; ``threads``: CPU threads of each core process (--ncpus)."""
    arch: str = DEFAULT_ARCH
    cube_size: int = 96
    epochs: int = 50
    number_subtomos: Optional[int] = None
    batch_size: Optional[int] = None
    ctf_mode: str = "network"
    mw_weight: float = 20.0
    padding_factor: float = 1.5
    gpus: Optional[Tuple[int, ...]] = None
    threads: int = 2
    extra: Dict[str, object] = field(default_factory=dict)

    def validate(self) -> TrainingSettings:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch}")
        if self.cube_size < 16 or self.cube_size % 16:
            raise ValueError(f"cube_size must be a positive multiple of 16, got {self.cube_size}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.number_subtomos is not None and self.number_subtomos < 1:
            raise ValueError(f"subtomograms per tomogram must be at least 1, got "
                             f"{self.number_subtomos}")
        if self.ctf_mode not in CTF_MODES:
            raise ValueError(f"CTF mode must be one of {', '.join(CTF_MODES)}, got {self.ctf_mode}")
        if self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        return self


# ------------------------------------------------------------------ the workflow
class WorkflowBuilder:
    """Creates the protocols of the chain in a project; launches each one (``launch=True``,
    waiting for it) or only saves it (``launch=False``: a graph to run later, e.g. to export
    as a template). ``log`` receives one line per protocol."""

    def __init__(self, project, launch: bool = True, log: Callable[[str], None] = logger.info):
        self.project = project
        self.launch = launch
        self.log = log
        self.protocols: Dict[str, object] = {}

    def add(self, key: str, cls, label: str, **params):
        prot = self.project.newProtocol(cls)
        prot.setObjLabel(label)
        for name, value in params.items():
            if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str) \
                    and hasattr(value[0], "getObjId"):
                pointer = getattr(prot, name)        # an output of an earlier protocol
                pointer.set(value[0])
                pointer.setExtended(value[1])
            else:
                getattr(prot, name).set(value)
        self.protocols[key] = prot
        if not self.launch:
            self.project.saveProtocol(prot)
            return prot
        errors = prot.validate()
        if errors:
            raise WorkflowError(f"{label}: " + "; ".join(str(e) for e in errors))
        self.log(f"running {label} ...")
        with ProgressMonitor(prot, lambda line: self.log(f"  {label}: {line}")):
            self.project.launchProtocol(prot, wait=True)
        if not prot.isFinished():
            logs = prot.getLogPaths()
            raise WorkflowError(f"{label} {prot.getStatus()}: "
                                f"{(prot.getErrorMessage() or 'no message').strip().splitlines()[-1]}"
                                f" (log: {os.path.abspath(logs[1]) if len(logs) > 1 else '?'})")
        return prot


class ProgressMonitor:
    """While a protocol runs, logs each new line of its ``progressLines()`` (the IsoNet2
    protocols: epoch, loss and time left of a training; tomograms predicted), polling its files
    every ``interval_s`` seconds in a background thread. Protocols without progress lines are
    left alone."""

    def __init__(self, protocol, log: Callable[[str], None], interval_s: float = 5.0):
        self.protocol, self.log, self.interval_s = protocol, log, interval_s
        self._stop = threading.Event()
        self._thread = None
        self._shown = set()

    def poll(self) -> None:
        try:
            lines = self.protocol.progressLines()
        except (OSError, ValueError):      # a file being replaced right now: next poll
            return
        for line in lines:
            if line not in self._shown:
                self._shown.add(line)
                self.log(line)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.poll()

    def __enter__(self):
        if hasattr(self.protocol, "progressLines"):
            self._thread = threading.Thread(target=self._loop, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.poll()                     # the final epoch and count
        return False


def build_workflow(project, layout: DataLayout, acq: Acquisition, training: TrainingSettings,
                   launch: bool = True, log: Callable[[str], None] = logger.info
                   ) -> Dict[str, object]:
    """Create (and with ``launch`` run) the chain of the module doc in ``project``. The project
    folder must be the working directory. Returns the protocols by role: ``import_full``,
    ``import_even``, ``import_odd``, ``import_ts``, ``import_ctf``, ``mask``, ``refine``,
    ``predict`` (those that the data allow).

    :raises WorkflowError: a protocol does not validate or fails (one line, with its log).
    """
    import tomo.protocols
    from tomo.protocols.protocol_import_ctf import ImportChoice

    from isonet2scipion.constants import HALVES_NONE, HALVES_SEPARATE
    from isonet2scipion.protocols import ProtIsoNet2MakeMask, ProtIsoNet2Predict, ProtIsoNet2Refine

    training.validate()
    wf = WorkflowBuilder(project, launch=launch, log=log)
    microscope = dict(voltage=acq.voltage_kv, sphericalAberration=acq.cs_mm,
                      amplitudeContrast=acq.amplitude_contrast)

    def import_tomograms(key, folder, what):
        return wf.add(key, tomo.protocols.ProtImportTomograms, f"import {what} tomograms",
                      filesPath=str(folder), filesPattern=MAP_PATTERN,
                      samplingRate=acq.pixel_size_a, acquisitionAngleMin=acq.tilt_min_deg,
                      acquisitionAngleMax=acq.tilt_max_deg, step=acq.tilt_step_deg, **microscope)

    full = import_tomograms("import_full", layout.full, "full") if layout.full else None
    if layout.has_halves:
        even = import_tomograms("import_even", layout.even, "even")
        odd = import_tomograms("import_odd", layout.odd, "odd")
        inputs = dict(halvesSource=HALVES_SEPARATE, inputEven=(even, "Tomograms"),
                      inputOdd=(odd, "Tomograms"))
    else:
        inputs = dict(halvesSource=HALVES_NONE, inputTomograms=(full, "Tomograms"))
    ctf = {}
    if layout.ctf is not None:
        ts = wf.add("import_ts", tomo.protocols.ProtImportTs, "import tilt series (angles)",
                    filesPath=str(layout.tilt_series), filesPattern="{TS}.mrc", anglesFrom=2,
                    samplingRate=acq.pixel_size_a, magnification=50000, tiltAxisAngle=0.0,
                    doseInitial=0.0, dosePerFrame=2.0, **microscope)
        ctfImport = wf.add("import_ctf", tomo.protocols.ProtImportTsCTF, "import IMOD CTF",
                           importFrom=ImportChoice.IMOD.value, filesPath=str(layout.ctf),
                           filesPattern="*.defocus",
                           inputSetOfTiltSeries=(ts, "outputTiltSeries"))
        # the tilt series the tomograms were reconstructed from: they say whether the
        # tomograms are phase flipped (here: not) and which views were used
        ctf = dict(inputCtfs=(ctfImport, "CTFs"), inputTiltSeries=(ts, "outputTiltSeries"))
    maskSource = full if full is not None else wf.protocols["import_even"]
    mask = wf.add("mask", ProtIsoNet2MakeMask, "isonet2 - make mask",
                  inputTomograms=(maskSource, "Tomograms"), numberOfThreads=3, binThreads=1)

    ctfMode = training.ctf_mode if ctf else "None"
    gpu = dict(useGpu=training.gpus is not None,
               gpuList=" ".join(str(g) for g in (training.gpus or (0,))),
               numberOfThreads=1, binThreads=training.threads)
    refine = wf.add("refine", ProtIsoNet2Refine, "isonet2 - refine", **inputs, **ctf,
                    inputMasks=(mask, "tomoMasks"), arch=ARCHS.index(training.arch),
                    cube_size=training.cube_size, epochs=training.epochs,
                    number_subtomos=training.number_subtomos, batch_size=training.batch_size,
                    CTF_mode=CTF_MODES.index(ctfMode), mw_weight=training.mw_weight,
                    save_interval=max(1, training.epochs), doPredict=False, **gpu,
                    **training.extra)
    wf.add("predict", ProtIsoNet2Predict, "isonet2 - predict", **inputs, **ctf,
           inputModel=(refine, "model"), padding_factor=training.padding_factor, **gpu)
    return wf.protocols


# ------------------------------------------------------------------ command line
def _gpu_ids(text: str) -> Tuple[int, ...]:
    try:
        ids = tuple(int(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"GPU ids must be integers such as 0 or 0,1; got {text!r}") from None
    if not ids or any(i < 0 for i in ids):
        raise argparse.ArgumentTypeError(f"GPU ids must be non-negative integers, got {text!r}")
    return ids


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Create project NAME in the current Scipion installation and run the chain on DATA_DIR."""
    parser = argparse.ArgumentParser(
        prog="python -m isonet2scipion.examples.scripted_workflow",
        description="Create a Scipion project and run import -> make mask -> refine -> predict.")
    parser.add_argument("project", help="name of the new Scipion project")
    parser.add_argument("data", help="data folder (even/ odd/ and/or full/, optional ctf/ with "
                                     "tilt_series/)")
    parser.add_argument("--pixel_size", type=float, default=None,
                        help="pixel size in Å (default: acquisition.json or the MRC header)")
    parser.add_argument("--epochs", type=int, default=TrainingSettings.epochs, help="epochs")
    parser.add_argument("--cube_size", type=int, default=TrainingSettings.cube_size,
                        help="training cube edge in voxels, a multiple of 16")
    parser.add_argument("--arch", default=TrainingSettings.arch, choices=ARCHS, help="network")
    parser.add_argument("--gpu", type=_gpu_ids, default=None, help="GPU ids, e.g. 0 or 0,1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from pyworkflow.project import Manager
    try:
        layout = find_inputs(args.data)
        acq = read_acquisition(layout, args.pixel_size)
        training = TrainingSettings(arch=args.arch, cube_size=args.cube_size, epochs=args.epochs,
                                    gpus=args.gpu).validate()
        manager = Manager()
        if manager.hasProject(args.project):
            raise ValueError(f"project {args.project} exists already; choose another name")
        project = manager.createProject(args.project)
        os.chdir(project.getPath())
        build_workflow(project, layout, acq, training)
    except (ValueError, OSError, WorkflowError) as exc:
        print(f"error: {exc}".replace("\n", " "), file=sys.stderr)
        return 2
    print(f"project {args.project}: {project.getPath()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
