"""Every file and folder name the core writes, in one place.

Training (``refine`` / ``denoise``) into its output folder:

* ``network_{method}_{arch}_{cube}_full.pt``: the latest state (replaced after every epoch);
* ``network_{method}_{arch}_{cube}_epoch{NNN}.pt``: one file per saved epoch, never overwritten;
* ``loss_history.json``, ``loss.png``, ``config.json``;
* ``preview/{tomogram}_epoch{NNN}.mrc`` (``with_preview``).

Predict into its output folder: ``[{prefix}_]{tomogram}_{corrected|denoised}.mrc`` and, for
even/odd halves, ``..._half1.mrc`` / ``..._half2.mrc``.

Tomogram names (``rlnTomoName``) become file-name stems through :func:`safe_name`.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Optional, Tuple, Union

PathLike = Union[str, os.PathLike]

MODEL_PREFIX = "network_"
FULL_SUFFIX = "_full.pt"
HISTORY_FILE = "loss_history.json"
LOSS_PNG = "loss.png"
CONFIG_FILE = "config.json"
PREVIEW_DIR = "preview"
CORRECTED, DENOISED = "corrected", "denoised"
"""Suffixes of predicted maps: refine models (``isonet2-n2n``, ``isonet2``) and ``n2n`` models."""

MODEL_NAME = re.compile(r"network_(?P<method>isonet2-n2n|isonet2|n2n)_(?P<arch>[A-Za-z0-9-]+?)_"
                        r"(?P<cube>\d+)_(?:full|epoch(?P<epoch>\d+))\.pt$")
"""A model file name (ours and the IsoNet2 program's): groups method, arch, cube, epoch."""

PREVIEW_NAME = re.compile(r"^(?P<name>.+)_epoch(?P<epoch>\d+)\.mrc$")
"""A preview map's name: groups name (the safe tomogram name) and epoch."""


def safe_name(name: str) -> str:
    """A tomogram name as a file-name stem, distinct for distinct names.

    A name of ASCII letters, digits, ``.``, ``_`` and ``-`` (not starting or ending with ``.`` or
    ``_``) is its own stem. In any other name, runs of other characters become ``_``, leading and
    trailing ``.``/``_`` are dropped (``tomogram`` if nothing is left), and six hex digits of the
    name's SHA-1 are appended: ``tomo a`` and ``tomo_a``, or ``tomo_α`` and ``tomo_β``, never
    share a file.

    Parameters
    ----------
    name : str
        The tomogram name (rlnTomoName).

    Returns
    -------
    str
        The stem.
    """
    text = str(name)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "tomogram"
    if stem == text:
        return stem
    return f"{stem}_{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:6]}"


def model_name(method: str, arch: str, cube: int, epoch: Optional[int] = None) -> str:
    """The name of a model file.

    Parameters
    ----------
    method, arch : str
        Training method and architecture.
    cube : int
        Cube edge (voxels).
    epoch : int, optional
        The epoch copy; None for the latest state.

    Returns
    -------
    str
        ``network_{method}_{arch}_{cube}_full.pt`` or ``..._epoch{NNN}.pt``.
    """
    suffix = "full" if epoch is None else f"epoch{int(epoch):03d}"
    return f"{MODEL_PREFIX}{method}_{arch}_{int(cube)}_{suffix}.pt"


def model_path(output_dir: PathLike, method: str, arch: str, cube: int,
               epoch: Optional[int] = None) -> Path:
    """The path of a model file, ``output_dir`` / :func:`model_name`.

    Parameters
    ----------
    output_dir : str or Path
        The training folder.
    method, arch : str
        Training method and architecture.
    cube : int
        Cube edge (voxels).
    epoch : int, optional
        The epoch copy; None for the latest state.

    Returns
    -------
    Path
        The model file.
    """
    return Path(output_dir) / model_name(method, arch, cube, epoch)


def is_full_model(name: str) -> bool:
    """Whether a file name is a latest-state model file (what ``--resume True`` continues).

    Parameters
    ----------
    name : str
        A file name.

    Returns
    -------
    bool
        True for ``network_*_full.pt``.
    """
    return name.startswith(MODEL_PREFIX) and name.endswith(FULL_SUFFIX)


DECONV_SUFFIX = "_deconv.mrc"
MASK_SUFFIX = "_mask.mrc"


def deconv_path(output_dir: PathLike, tomogram: str) -> Path:
    """A tomogram deconvolved by ``deconv``.

    Parameters
    ----------
    output_dir : str or Path
        The folder.
    tomogram : str
        rlnTomoName.

    Returns
    -------
    Path
        ``OUTPUT_DIR/<rlnTomoName>_deconv.mrc``.
    """
    return Path(output_dir) / f"{tomogram}{DECONV_SUFFIX}"


def mask_path(output_dir: PathLike, tomogram: str) -> Path:
    """A tomogram's mask made by ``make-mask``.

    Parameters
    ----------
    output_dir : str or Path
        The folder.
    tomogram : str
        rlnTomoName.

    Returns
    -------
    Path
        ``OUTPUT_DIR/<rlnTomoName>_mask.mrc``.
    """
    return Path(output_dir) / f"{tomogram}{MASK_SUFFIX}"


def preview_path(output_dir: PathLike, tomogram: str, epoch: int) -> Path:
    """A training preview.

    Parameters
    ----------
    output_dir : str or Path
        The training folder.
    tomogram : str
        rlnTomoName.
    epoch : int
        The epoch previewed.

    Returns
    -------
    Path
        ``output_dir/preview/{safe name}_epoch{NNN}.mrc``.
    """
    return Path(output_dir) / PREVIEW_DIR / f"{safe_name(tomogram)}_epoch{int(epoch):03d}.mrc"


def predicted_paths(output_dir: PathLike, tomogram: str, suffix: str,
                    prefix: str = "") -> Tuple[Path, Tuple[Path, Path]]:
    """The predicted map of a tomogram and its two half maps.

    Parameters
    ----------
    output_dir : str or Path
        The folder.
    tomogram : str
        rlnTomoName.
    suffix : str
        ``corrected`` or ``denoised``.
    prefix : str
        Optional name prefix (``{prefix}_``).

    Returns
    -------
    tuple
        ``(map, (half1, half2))``: ``[{prefix}_]{safe name}_{suffix}.mrc`` and
        ``..._half1.mrc`` / ``..._half2.mrc``.
    """
    stem = f"{prefix}_{safe_name(tomogram)}" if prefix else safe_name(tomogram)
    out = Path(output_dir)
    return (out / f"{stem}_{suffix}.mrc",
            (out / f"{stem}_{suffix}_half1.mrc", out / f"{stem}_{suffix}_half2.mrc"))


def unweighted_scratch_path(predicted: PathLike) -> Path:
    """Where predict keeps the unweighted prediction of the halves' average while it FSC-weights
    it into ``predicted`` (hidden, beside it, removed after; one left by a killed run is
    replaced and removed by the next prediction of that map).

    Parameters
    ----------
    predicted : str or Path
        The predicted map (:func:`predicted_paths`).

    Returns
    -------
    Path
        ``.<map name>.unweighted.mrc`` in the map's folder.
    """
    predicted = Path(predicted)
    return predicted.parent / f".{predicted.name}.unweighted.mrc"
