"""What a training is given: the tomograms to learn from and how to run.

Plain data, no torch: the plan (:mod:`.plan`) builds them from a STAR file, the trainer
(:mod:`.trainer`) and its state (:mod:`.state`) take them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

from isonet2core.config import Microscope


@dataclass(frozen=True)
class TomogramSpec:
    """One tomogram to train on: ``map_paths`` (even, odd) for N2N methods or one map for
    ``isonet2``; its microscope (tilt range and optics), cubes per epoch and optional mask."""
    name: str
    map_paths: Tuple[Path, ...]
    microscope: Microscope
    n_subtomos: int
    mask_path: Optional[Path] = None
    index: Optional[int] = None       # rlnIndex in the STAR (previews select by it)
    box_file: Optional[Path] = None   # rlnBoxFile: fixed cube centres (x y z per line)


@dataclass(frozen=True)
class RunSettings:
    """How to run (not what to learn): output folder, devices, resume / fine-tune sources.

    ``resume``: a checkpoint to continue from (its weights, optimiser and epoch);
    ``pretrained_model``: a checkpoint whose weights start a new run (fine-tuning);
    ``cpu_processes`` > 1 runs DistributedDataParallel over that many CPU processes (gloo),
    the multi-GPU code path without GPUs; ``progress``: tqdm bars on stderr.
    """
    output_dir: Path
    device: str = "auto"
    gpu_ids: Optional[str] = None
    ncpus: int = 4
    resume: Optional[Path] = None
    pretrained_model: Optional[Path] = None
    command_line: Tuple[str, ...] = ()
    progress: bool = True
    cpu_processes: int = 1
    protect: Tuple[Path, ...] = ()    # other files the run's outputs must not replace (the STAR's)
