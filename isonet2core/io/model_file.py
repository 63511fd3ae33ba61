"""Model files (``.pt``): atomic save, validated load, rebuilding the network, file names.

A checkpoint is a dict holding only plain Python values (dict, list, tuple, str, int, float,
bool, None) and torch tensors, so it loads with ``torch.load(weights_only=True)``: reading a
model file never executes code from it. ``save_checkpoint`` refuses any other type (e.g. a
numpy array inside ``rng_state``), naming the key, so a file that could not be re-read is never
written.

Keys (the contract; ``REQUIRED_KEYS`` must be present, the rest are optional):

* ``format`` = ``"isonet2core-checkpoint"``, ``format_version`` (int), ``isonet2core_version``
  (filled in by ``save_checkpoint``);
* ``model_state`` (state dict of the U-Net), ``arch`` (one of ``nets.registry.ARCHITECTURES``),
  ``cube_size`` (int, multiple of 16), ``method`` (``config.METHODS``);
* ``config`` (``config.to_dict(TrainConfig)``), ``epoch``, ``optimizer_state``,
  ``scheduler_state``, ``scaler_state``, ``rng_state``, ``normalization`` (per tomogram name:
  ``{"mean": .., "std": ..}``), ``tomograms`` (per tomogram name: ``config.to_dict(Microscope)``, which
  holds the pixel size and the tilt range),
  ``history``, ``command_line``, ``model2_state`` (the second network of split-halves training);
  with ``ema_decay``: ``model_state`` / ``model2_state`` hold the weight averages (what predict
  uses), ``train_model_state`` / ``train_model2_state`` the trained weights (what resume
  continues) and ``ema_updates`` the number of averaging updates.

Model files of the IsoNet2 program (``network_*.pt`` with ``model_state_dict``, ``arch``,
``cube_size``, ``method``, ``CTF_mode``, ``do_phaseflip_input`` and a ``metrics`` dict of numpy
arrays) load too, for its ``unet-small|medium|large`` (our ``unet-*`` has its layout and names):
:func:`load_checkpoint` turns them into this layout with ``source = "IsoNet2"``. The program
trains and predicts on inverted, protein-bright maps: the inversion is folded into the weights
(:func:`isonet2core.nets.bn_unet.fold_inverted_contrast`, exact), so that predict and
fine-tuning (``pretrained_model``) use them as any of ours.
Their numpy arrays are admitted by a list of numpy's array-rebuilding functions, never by
unpickling arbitrary code.

File names: :mod:`isonet2core.io.output_names`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from isonet2core import __version__
from isonet2core.config import METHODS
from isonet2core.io.atomic import atomic_output
from isonet2core.io.output_names import PathLike
from isonet2core.nets.bn_unet import fold_inverted_contrast
from isonet2core.nets.registry import ARCHITECTURES, build, is_program_layout
from isonet2core.nets.unet import SIZE_MULTIPLE

FORMAT = "isonet2core-checkpoint"
PROGRAM_SOURCE = "IsoNet2"
"""``source`` of checkpoints read from model files of the IsoNet2 program."""
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "model_state", "arch", "cube_size", "method")



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


def _validate_fields(ckpt: dict, name: str) -> None:
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{name}: checkpoint lacks the keys {', '.join(missing)}")
    if ckpt["arch"] not in ARCHITECTURES:
        raise ValueError(f"{name}: unknown network architecture {ckpt['arch']!r} "
                         f"(expected one of {', '.join(ARCHITECTURES)})")
    cube = ckpt["cube_size"]
    if isinstance(cube, bool) or not isinstance(cube, int) or cube < SIZE_MULTIPLE or cube % SIZE_MULTIPLE:
        raise ValueError(f"{name}: cube_size must be a positive multiple of {SIZE_MULTIPLE}, got {cube!r}")
    if ckpt["method"] not in METHODS:
        raise ValueError(f"{name}: unknown method {ckpt['method']!r} (expected one of {', '.join(METHODS)})")
    if not isinstance(ckpt["model_state"], dict):
        raise ValueError(f"{name}: model_state is not a state dict")


def save_checkpoint(path: PathLike, state: dict) -> Path:
    """Write a checkpoint atomically (temporary file in the same folder + ``os.replace``;
    temporaries that killed runs left beside ``path`` are removed first).

    ``format``, ``format_version`` and ``isonet2core_version`` are filled in.

    Parameters
    ----------
    path : str or Path
        The model file.
    state : dict
        The keys of the module docstring, plain values only.

    Returns
    -------
    Path
        ``Path(path)``.

    Raises
    ------
    ValueError
        Before anything is written: a required key is missing or a value is not plain.
    """
    path = Path(path)
    full = dict(state)
    full["format"] = FORMAT
    full["format_version"] = FORMAT_VERSION
    full["isonet2core_version"] = __version__
    _validate_fields(full, str(path))
    for key, value in full.items():
        _check_plain(value, key)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as fh:
            torch.save(full, fh)
            fh.flush()
            os.fsync(fh.fileno())
    return path


def load_checkpoint(path: PathLike, map_location: Any = "cpu") -> dict:
    """Read and validate a model file (ours, or the IsoNet2 program's, converted).

    Parameters
    ----------
    path : str or Path
        The model file.
    map_location : Any
        ``torch.load``'s (default the CPU).

    Returns
    -------
    dict
        The checkpoint.

    Raises
    ------
    FileNotFoundError
        It does not exist.
    ValueError
        Naming the file when it is not a readable checkpoint (random bytes, truncated, another
        program's torch file, missing keys, unknown arch/method, a newer format version).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with torch.serialization.safe_globals(_NUMPY_GLOBALS):
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, UnpicklingError, EOFError, ... by case
        raise ValueError(f"{path}: not a readable isonet2core checkpoint "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if isinstance(ckpt, dict) and "model_state_dict" in ckpt and "format" not in ckpt:
        ckpt = _from_isonet2_program(ckpt, path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise ValueError(f"{path}: not an isonet2core checkpoint (no format={FORMAT!r} entry; "
                         "model files are written by `isonet2 refine` or `isonet2 denoise`)")
    version = ckpt.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format version {version!r} is not supported "
                         f"(this isonet2core reads up to {FORMAT_VERSION})")
    _validate_fields(ckpt, str(path))
    return ckpt


def _numpy_globals() -> list:
    import numpy as np
    names = [np.ndarray, np.dtype]
    import importlib
    try:
        multiarray = importlib.import_module("numpy._core.multiarray")   # numpy 2
    except ImportError:
        multiarray = importlib.import_module("numpy.core.multiarray")    # numpy 1
    names += [multiarray._reconstruct, multiarray.scalar]
    names += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "bool")]
    return names


_NUMPY_GLOBALS = _numpy_globals()


def _from_isonet2_program(raw: dict, path: Path) -> dict:
    """Our checkpoint layout for a model file written by the IsoNet2 program."""
    missing = [k for k in ("arch", "cube_size", "method") if k not in raw]
    if missing:
        raise ValueError(f"{path}: an IsoNet2 program model file without {', '.join(missing)}")
    arch = str(raw["arch"])
    if arch not in ARCHITECTURES or not is_program_layout(arch):
        raise ValueError(f"{path}: IsoNet2 network {arch!r} is not supported (unet-small, unet-medium "
                         "and unet-large are; the scunet family is not built here)")
    prefixes = ("module.", "_orig_mod.")
    state = {}
    for key, value in raw["model_state_dict"].items():
        for prefix in prefixes:
            key = key[len(prefix):] if key.startswith(prefix) else key
        state[key] = value
    ctf_mode = raw.get("CTF_mode")
    ctf_mode = None if ctf_mode in (None, "None", "") else str(ctf_mode)
    method = str(raw["method"])
    try:
        state = fold_inverted_contrast(state)
    except KeyError as exc:
        raise ValueError(f"{path}: an IsoNet2 program model file whose weights lack {exc}") from exc
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "model_state": state, "arch": arch,
            "cube_size": int(raw["cube_size"]), "method": method, "source": PROGRAM_SOURCE,
            "config": {"method": method, "arch": arch, "cube_size": int(raw["cube_size"]),
                       "ctf_mode": ctf_mode,
                       "do_phaseflip_input": bool(raw.get("do_phaseflip_input", True))}}


def build_model(ckpt: dict, state_key: str = "model_state") -> nn.Module:
    """Rebuild the checkpoint's network (``ckpt['arch']``) with its weights.

    Parameters
    ----------
    ckpt : dict
        From :func:`load_checkpoint`.
    state_key : str
        ``"model_state"``, or ``"model2_state"`` for the second split-halves network.

    Returns
    -------
    nn.Module
        On the CPU in training mode (call ``.eval()`` to predict).

    Raises
    ------
    ValueError
        The weights do not fit the architecture or the key is absent.
    """
    if state_key not in ckpt or ckpt[state_key] is None:
        raise ValueError(f"checkpoint has no {state_key!r} (keys: {', '.join(sorted(ckpt))})")
    model = build(ckpt["arch"])
    try:
        model.load_state_dict(ckpt[state_key], strict=True)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise ValueError(f"checkpoint weights {state_key!r} do not fit architecture "
                         f"{ckpt['arch']!r}: {str(exc).splitlines()[0]}") from exc
    return model


def check_compatible(ckpt: dict, arch: Optional[str] = None, cube_size: Optional[int] = None,
                     *, name: str = "checkpoint") -> None:
    """Check that a checkpoint was trained with the requested architecture and cube size (resume
    and pretrained_model).

    Parameters
    ----------
    ckpt : dict
        From :func:`load_checkpoint`.
    arch : str, optional
        Requested architecture (None: not checked).
    cube_size : int, optional
        Requested cube edge (None: not checked).
    name : str
        The checkpoint (e.g. its path), named in the message.

    Raises
    ------
    ValueError
        Naming both values.
    """
    if arch is not None and ckpt["arch"] != arch:
        raise ValueError(f"{name} holds a {ckpt['arch']!r} network, but arch {arch!r} was requested; "
                         f"use --arch {ckpt['arch']} or another model")
    if cube_size is not None and int(ckpt["cube_size"]) != int(cube_size):
        raise ValueError(f"{name} was trained with cube_size {ckpt['cube_size']}, but cube_size "
                         f"{cube_size} was requested; use --cube_size {ckpt['cube_size']} or another model")
