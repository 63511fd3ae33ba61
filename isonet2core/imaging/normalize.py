"""Global per-tomogram normalisation, identical in training and prediction.

IsoNet2 normalises whole tomograms (not each subtomogram): one mean and one standard deviation
per tomogram map, measured on its central slices, so that every cube of a tomogram is scaled
alike and predicted tiles join without patchy steps.

* ``normalization_stats(volume)`` measures them on the central ``CENTRAL_FRACTION`` (50 %) of
  the z slices (at least one slice; the full x-y extent of those slices). The top and bottom of
  a tomogram are mostly empty or carry reconstruction artefacts, so the central slices describe
  the specimen. The volume is read slice chunk by slice chunk in float64 (a memory-mapped
  tomogram is never loaded whole); chunk means and sums of squares are combined exactly
  (Chan et al.), so the result does not suffer from cancellation when mean >> std.
* Each map is normalised with ITS OWN statistics: the even and odd halves of an N2N pair each
  with theirs, a full map with its own. Training (sampler) and prediction both call
  ``normalization_stats`` on the map they read, so they agree by construction.
* ``normalize(v) = (v - mean) / std`` keeps the contrast (protein stays dark, no inversion);
  ``denormalize(v) = v * std + mean`` returns a network output to the input's scale.
"""
from __future__ import annotations

import math
from typing import Any, Tuple, Union

import numpy as np
import torch

CENTRAL_FRACTION = 0.5
"""Fraction of the z slices, centred, over which the statistics are measured."""

_CHUNK_VOXELS = 4 * 1024 * 1024  # voxels per float64 chunk (32 MiB; 16 MiB more while read as float32)

Array = Union[np.ndarray, torch.Tensor]


def central_slices(n_z: int) -> slice:
    """The z slices whose statistics normalise a tomogram.

    Parameters
    ----------
    n_z : int
        Number of z slices, at least 1.

    Returns
    -------
    slice
        The central ``CENTRAL_FRACTION`` of them (at least one).
    """
    if n_z < 1:
        raise ValueError(f"a tomogram needs at least one z slice, got {n_z}")
    count = max(1, int(round(n_z * CENTRAL_FRACTION)))
    start = (n_z - count) // 2
    return slice(start, start + count)


def normalization_stats(volume: Any, name: str = "volume") -> Tuple[float, float]:
    """Mean and standard deviation of the central z slices of a tomogram.

    Parameters
    ----------
    volume : numpy.ndarray or memory map or isonet2core.io.mrcio.PlaneReader
        ``(z, y, x)``; only ``shape`` and ``volume[z0:z1]`` are used.
    name : str
        Names the tomogram (e.g. its path) in error messages.

    Returns
    -------
    tuple of float
        ``(mean, std)`` over :func:`central_slices`, float64 arithmetic.

    Raises
    ------
    ValueError
        The volume is not 3D, has NaN/inf in those slices, or is constant there (std 0).
    """
    shape = tuple(getattr(volume, "shape", ()))
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name}: expected a non-empty (z, y, x) volume, got shape {shape}")
    zs = central_slices(shape[0])
    per_slice = shape[1] * shape[2]
    step = max(1, _CHUNK_VOXELS // per_slice)
    count, mean, m2 = 0, 0.0, 0.0
    for z0 in range(zs.start, zs.stop, step):
        # a float64 copy, centred and squared in place (no further chunk-sized temporaries)
        chunk = np.array(volume[z0:min(z0 + step, zs.stop)], dtype=np.float64)
        if not np.isfinite(chunk).all():
            raise ValueError(f"{name}: contains NaN or infinite values (z slices {z0}..)")
        n = chunk.size
        c_mean = float(chunk.mean())
        chunk -= c_mean
        c_m2 = float(np.square(chunk, out=chunk).sum())
        delta = c_mean - mean
        total = count + n
        mean += delta * n / total
        m2 += c_m2 + delta * delta * count * n / total
        count = total
    std = math.sqrt(m2 / count)
    if not std > 0.0 or not math.isfinite(std) or std <= 1e-12 * max(1.0, abs(mean)):
        raise ValueError(f"{name}: the central slices are constant (std {std:g}); "
                         "cannot normalise an empty tomogram")
    return mean, std


def normalize(volume: Array, mean: float, std: float) -> Array:
    """``(volume - mean) / std``.

    Parameters
    ----------
    volume : numpy.ndarray or torch.Tensor
        Any shape.
    mean, std : float
        From :func:`normalization_stats`.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        A new array of the type and shape of ``volume``.
    """
    return (volume - mean) / std


def denormalize(volume: Array, mean: float, std: float) -> Array:
    """``volume * std + mean``, the inverse of :func:`normalize`.

    Parameters
    ----------
    volume : numpy.ndarray or torch.Tensor
        Any shape.
    mean, std : float
        From :func:`normalization_stats`.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        A new array of the type and shape of ``volume``.
    """
    return volume * std + mean
