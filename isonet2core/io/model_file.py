"""The model file (``.pt``): one typed object, :class:`ModelFile`, with one save, load and
validation; model files of the official IsoNet2 program load into it too.

A model file holds only plain Python values (dict, list, tuple, str, int, float, bool, None) and
torch tensors, so it loads with ``torch.load(weights_only=True)``: reading one never executes
code from it. :meth:`ModelFile.save` refuses any other value (e.g. a numpy array inside
``rng_state``), naming the field, so a file that could not be re-read is never written.

On disk it is a dict whose keys are the fields of :class:`ModelFile` plus ``format`` =
:data:`FORMAT` and ``format_version``; the fields are documented once, on the class.

Model files of the IsoNet2 program (``network_*.pt`` with ``model_state_dict``, ``arch``,
``cube_size``, ``method``, ``CTF_mode``, ``do_phaseflip_input`` and a ``metrics`` dict of numpy
arrays) load for its ``unet-small|medium|large`` (our ``unet-*`` has its layout and names), with
``source`` = :data:`PROGRAM_SOURCE`. The program trains and predicts on inverted, protein-bright
maps: the inversion is folded into the weights
(:func:`isonet2core.nets.bn_unet.fold_inverted_contrast`, exact), so that predict and fine-tuning
use them as any of ours. Their numpy arrays are admitted by a list of numpy's array-rebuilding
functions, never by unpickling arbitrary code.

File names: :mod:`isonet2core.io.output_names`.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from isonet2core import __version__
from isonet2core.config import METHODS, flips_input
from isonet2core.io.atomic import atomic_output
from isonet2core.io.output_names import PathLike
from isonet2core.nets.bn_unet import fold_inverted_contrast
from isonet2core.nets.registry import ARCHITECTURES, build, is_program_layout
from isonet2core.nets.unet import SIZE_MULTIPLE

FORMAT = "isonet2core-checkpoint"
FORMAT_VERSION = 1
PROGRAM_SOURCE = "IsoNet2"
"""``source`` of model files written by the IsoNet2 program."""
StateDict = Dict[str, torch.Tensor]


@dataclass(frozen=True)
class ModelFile:
    """A trained network and what it was trained on.

    Attributes
    ----------
    model_state : dict
        Weights of the network predict uses (with ``ema_decay``: the weight averages).
    arch : str
        One of :data:`isonet2core.nets.registry.ARCHITECTURES`.
    cube_size : int
        Edge of the training cubes in voxels, a positive multiple of 16.
    method : str
        One of :data:`isonet2core.config.METHODS`.
    config : dict
        ``config.to_dict(TrainConfig)`` of the run (of a program file: method, arch, cube_size,
        ctf_mode and do_phaseflip_input).
    model2_state : dict, optional
        The second network of split-halves training.
    train_model_state, train_model2_state : dict, optional
        With ``ema_decay``: the trained weights (what resume continues); ``ema_updates`` counts
        the averaging updates.
    epoch, batch_size : int, optional
        The last epoch trained and the cubes per step.
    optimizer_state, scheduler_state, scaler_state, rng_state : dict, optional
        What resume restores.
    normalization : dict
        Per tomogram name: ``{"mean", "std", "maps": [{"mean", "std"}, ...]}``.
    tomograms : dict
        Per tomogram name: ``config.to_dict(Microscope)`` (pixel size, tilt range, ...) with the
        maps, mask and subtomogram count trained on.
    history : list of dict
        One entry per epoch (``epoch``, ``loss``, ``seconds``, ...).
    command_line : list of str
        The command that trained it.
    source : str, optional
        :data:`PROGRAM_SOURCE` for a program file, else None.
    isonet2core_version : str
        The version that wrote it.
    """

    model_state: StateDict
    arch: str
    cube_size: int
    method: str
    config: Dict[str, Any] = field(default_factory=dict)
    model2_state: Optional[StateDict] = None
    train_model_state: Optional[StateDict] = None
    train_model2_state: Optional[StateDict] = None
    ema_updates: int = 0
    epoch: Optional[int] = None
    batch_size: Optional[int] = None
    optimizer_state: Optional[Dict[str, Any]] = None
    scheduler_state: Optional[Dict[str, Any]] = None
    scaler_state: Optional[Dict[str, Any]] = None
    rng_state: Optional[Dict[str, Any]] = None
    normalization: Dict[str, Any] = field(default_factory=dict)
    tomograms: Dict[str, Any] = field(default_factory=dict)
    history: List[Dict[str, Any]] = field(default_factory=list)
    command_line: List[str] = field(default_factory=list)
    source: Optional[str] = None
    isonet2core_version: str = __version__

    @property
    def split_halves(self) -> bool:
        """Whether it holds the two networks of split-halves training."""
        return self.model2_state is not None

    @property
    def resumable(self) -> bool:
        """Whether a training can continue from it (optimiser state and epoch present)."""
        return self.optimizer_state is not None and self.epoch is not None

    def flips_input(self, is_ctf_flipped: bool) -> bool:
        """Whether predict phase flips its inputs: :func:`isonet2core.config.flips_input` of the
        training settings (``ctf_mode``, ``do_phaseflip_input``).

        Parameters
        ----------
        is_ctf_flipped : bool
            The maps to predict are phase flipped already.

        Returns
        -------
        bool
            True when predict flips them.
        """
        return flips_input(self.config.get("ctf_mode"), bool(self.config.get("do_phaseflip_input", True)),
                           is_ctf_flipped)

    def training_states(self) -> Tuple[StateDict, Optional[StateDict]]:
        """The weights training continues from: the trained ones where the file holds weight
        averages for predict, else the predict weights."""
        return (self.train_model_state or self.model_state,
                self.train_model2_state or self.model2_state)

    def with_trained_weights(self) -> ModelFile:
        """The same model with the trained weights as its predict weights and no averages.

        Returns
        -------
        ModelFile
            A copy, or itself when it holds no averages.
        """
        if self.train_model_state is None:
            return self
        return self.replace(model_state=self.train_model_state, model2_state=self.train_model2_state,
                            train_model_state=None, train_model2_state=None, ema_updates=0)

    def replace(self, **changes: Any) -> ModelFile:
        """A copy with some fields changed.

        Parameters
        ----------
        **changes : Any
            New values by field name.

        Returns
        -------
        ModelFile
            The copy.
        """
        return dataclasses.replace(self, **changes)

    def validate(self, name: str = "model file") -> None:
        """Check arch, cube_size, method and the weights' type.

        Parameters
        ----------
        name : str
            The file, named in the message.

        Raises
        ------
        ValueError
            Naming ``name`` and the invalid value.
        """
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"{name}: unknown network architecture {self.arch!r} "
                             f"(expected one of {', '.join(ARCHITECTURES)})")
        cube = self.cube_size
        if isinstance(cube, bool) or not isinstance(cube, int) or cube < SIZE_MULTIPLE or cube % SIZE_MULTIPLE:
            raise ValueError(f"{name}: cube_size must be a positive multiple of {SIZE_MULTIPLE}, got {cube!r}")
        if self.method not in METHODS:
            raise ValueError(f"{name}: unknown method {self.method!r} (expected one of {', '.join(METHODS)})")
        if not isinstance(self.model_state, dict):
            raise ValueError(f"{name}: model_state is not a state dict")

    def save(self, path: PathLike) -> Path:
        """Write the file atomically (temporary file in the same folder, fsync, ``os.replace``;
        temporaries that killed runs left beside ``path`` are removed first).

        Parameters
        ----------
        path : str or Path
            The model file.

        Returns
        -------
        Path
            ``Path(path)``.

        Raises
        ------
        ValueError
            Before anything is written: an invalid field or a value that is not plain.
        """
        path = Path(path)
        self.validate(str(path))
        content = {"format": FORMAT, "format_version": FORMAT_VERSION,
                   **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                   "isonet2core_version": __version__}
        for key, value in content.items():
            _check_plain(value, key)
        with atomic_output(path) as tmp:
            with open(tmp, "wb") as fh:
                torch.save(content, fh)
                fh.flush()
                os.fsync(fh.fileno())
        return path

    @classmethod
    def load(cls, path: PathLike, map_location: Any = "cpu") -> ModelFile:
        """Read and validate a model file (ours, or the IsoNet2 program's).

        Parameters
        ----------
        path : str or Path
            The model file.
        map_location : Any
            ``torch.load``'s (default the CPU).

        Returns
        -------
        ModelFile

        Raises
        ------
        FileNotFoundError
            It does not exist.
        ValueError
            Naming the file when it is not a readable model file (random bytes, truncated, another
            program's torch file, missing fields, unknown arch/method, a newer format version).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"model file not found: {path}")
        try:
            with torch.serialization.safe_globals(_NUMPY_GLOBALS):
                raw = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... by case
            raise ValueError(f"{path}: not a readable isonet2core checkpoint "
                             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
        if isinstance(raw, dict) and "model_state_dict" in raw and "format" not in raw:
            model = _from_isonet2_program(raw, path)
        else:
            model = _from_our_file(raw, path)
        model.validate(str(path))
        return model

    def network(self, second: bool = False, *, name: str = "model file") -> nn.Module:
        """Rebuild the network with its weights.

        Parameters
        ----------
        second : bool
            The split-halves twin (``model2_state``) instead of the first network.
        name : str
            The file, named in the message.

        Returns
        -------
        nn.Module
            On the CPU in training mode (call ``.eval()`` to predict).

        Raises
        ------
        ValueError
            The weights do not fit the architecture, or the file has no second network.
        """
        weights = self.model2_state if second else self.model_state
        if weights is None:
            raise ValueError(f"{name} holds no second (split-halves) network")
        model = build(self.arch)
        try:
            model.load_state_dict(weights, strict=True)
        except (RuntimeError, KeyError, TypeError) as exc:
            raise ValueError(f"{name}: weights of the {'second ' if second else ''}network do not fit "
                             f"architecture {self.arch!r}: {str(exc).splitlines()[0]}") from exc
        return model

    def check_compatible(self, arch: Optional[str] = None, cube_size: Optional[int] = None,
                         *, name: str = "model file") -> None:
        """Check that it was trained with the requested architecture and cube size (resume,
        pretrained_model, predict's second model).

        Parameters
        ----------
        arch : str, optional
            The requested architecture (None: not checked).
        cube_size : int, optional
            The requested cube edge in voxels (None: not checked).
        name : str
            The file, named in the message.

        Raises
        ------
        ValueError
            Naming both values and ``name``.
        """
        if arch is not None and self.arch != arch:
            raise ValueError(f"{name} holds a {self.arch!r} network, but arch {arch!r} was requested; "
                             f"use --arch {self.arch} or another model")
        if cube_size is not None and int(self.cube_size) != int(cube_size):
            raise ValueError(f"{name} was trained with cube_size {self.cube_size}, but cube_size "
                             f"{cube_size} was requested; use --cube_size {self.cube_size} or another model")


FIELDS: Tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ModelFile))
"""The keys of a model file besides ``format`` and ``format_version``."""
REQUIRED_FIELDS: Tuple[str, ...] = tuple(f.name for f in dataclasses.fields(ModelFile)
                                         if f.default is dataclasses.MISSING
                                         and f.default_factory is dataclasses.MISSING)


def _from_our_file(raw: Any, path: Path) -> ModelFile:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"{path}: not an isonet2core checkpoint (no format={FORMAT!r} entry; "
                         "model files are written by `isonet2 refine` or `isonet2 denoise`)")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {version!r} is not supported "
                         f"(this isonet2core reads up to {FORMAT_VERSION})")
    missing = [k for k in REQUIRED_FIELDS if k not in raw]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks the keys {', '.join(missing)}")
    present = {k: raw[k] for k in FIELDS if raw.get(k) is not None}
    return ModelFile(**present)


def _check_plain(value: Any, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` unless ``value`` loads with ``weights_only=True``."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor, torch.Size, torch.dtype)):
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise ValueError(f"checkpoint key {where}: dict key {k!r} of type {type(k).__name__} "
                                 "is not a plain value")
            _check_plain(v, f"{where}.{k}")
        return
    if isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    raise ValueError(f"checkpoint key {where} holds a {type(value).__module__}.{type(value).__name__}; "
                     "store only plain Python values and torch tensors")


def _numpy_globals() -> list:
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")   # numpy 2
    except ImportError:
        multiarray = importlib.import_module("numpy.core.multiarray")    # numpy 1
    return [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
            *(type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool"))]


_NUMPY_GLOBALS = _numpy_globals()


def _from_isonet2_program(raw: dict, path: Path) -> ModelFile:
    """A model file written by the IsoNet2 program, its inversion folded into the weights."""
    missing = [k for k in ("arch", "cube_size", "method") if k not in raw]
    if missing:
        raise ValueError(f"{path}: an IsoNet2 program model file without {', '.join(missing)}")
    arch = str(raw["arch"])
    if arch not in ARCHITECTURES or not is_program_layout(arch):
        raise ValueError(f"{path}: IsoNet2 network {arch!r} is not supported (unet-small, unet-medium "
                         "and unet-large are; the scunet family is not built here)")
    state = {}
    for key, value in raw["model_state_dict"].items():
        for prefix in ("module.", "_orig_mod."):
            key = key[len(prefix):] if key.startswith(prefix) else key
        state[key] = value
    ctf_mode = raw.get("CTF_mode")
    ctf_mode = None if ctf_mode in (None, "None", "") else str(ctf_mode)
    method = str(raw["method"])
    try:
        state = fold_inverted_contrast(state)
    except KeyError as exc:
        raise ValueError(f"{path}: an IsoNet2 program model file whose weights lack {exc}") from exc
    cube = int(raw["cube_size"])
    return ModelFile(model_state=state, arch=arch, cube_size=cube, method=method, source=PROGRAM_SOURCE,
                     config={"method": method, "arch": arch, "cube_size": cube, "ctf_mode": ctf_mode,
                             "do_phaseflip_input": bool(raw.get("do_phaseflip_input", True))})
