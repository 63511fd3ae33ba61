"""FSC weighting of a map averaged from two half maps (Rosenthal & Henderson's ``C_ref``).

The expected correlation of a map's Fourier shell with the true density is
``C_ref = sqrt(2 FSC / (1 + FSC))``, where ``FSC`` is the correlation of the two half maps in
that shell (Rosenthal & Henderson, J. Mol. Biol. 2003). Multiplying each shell of the averaged
map by ``C_ref`` (clipped to [0, 1]; 0 where the halves do not correlate) damps the shells
where the halves disagree, i.e. where the map holds mostly noise, and keeps those where they
agree: the filter that maximises the expected correlation of the whole map with the truth.
It is isotropic and real, so every FSC of the map against anything is unchanged shell by shell
(up to shell binning); the Pearson correlation with the truth is what it changes.

For ``predict``: the half maps are the predictions of the even and the odd tomogram. With one
network trained on both halves the two predictions share the network's own prior (its filling
of the missing wedge is alike in both), so their FSC overestimates the true one and the
weights err on the side of keeping. The FSC is measured on the central block of at most
``FSC_CROP`` voxels per axis (bounded memory); the filter is then applied to the average slab
by slab (:func:`weighted_average_planes`): blocks of z planes, each with ``margin`` planes of
context on both sides (periodic beyond the faces, as one FFT of the whole volume would take
them), the whole y-x extent, one FFT per block; a volume of at most ``block + 2 margin`` planes
is filtered with one FFT.
Frequencies are in cycles/voxel; ``(z, y, x)`` volumes.
"""
from __future__ import annotations

from typing import Iterator, Sequence, Tuple

import numpy as np
import torch

from isonet2core.imaging import fourier, metrics

FSC_CROP = 160
"""Largest edge (voxels) of the central block on which the half maps' FSC is measured."""

MARGIN_PLANES = 24
"""Context planes on each side of a filtered block: the filter's point-spread function is cut
there (on noise, with weights falling from 1 to 0 over half the band, the slab-wise result stays
within 1.9 % of the map's standard deviation of one whole-volume filter; 2.5 % with 16)."""


def fsc_weights(fsc: np.ndarray) -> np.ndarray:
    """``C_ref`` of each shell.

    Parameters
    ----------
    fsc : numpy.ndarray
        Half-map FSC per shell, ``(n_shells,)``; ``nan`` counts as 0.

    Returns
    -------
    numpy.ndarray
        float64 ``sqrt(2 FSC / (1 + FSC))`` clipped to [0, 1] (0 where ``FSC <= 0``).
    """
    f = np.clip(np.nan_to_num(np.asarray(fsc, dtype=np.float64), nan=0.0), 0.0, 1.0)
    return np.sqrt(2.0 * f / (1.0 + f))


def central_block(volume, size: int) -> np.ndarray:
    """The central block of a volume, at most ``size`` voxels per axis.

    Parameters
    ----------
    volume : array_like
        ``(z, y, x)``; anything whose ``volume[z0:z1]`` gives z planes (array, memory map,
        :class:`isonet2core.io.mrcio.PlaneReader`).
    size : int
        Largest edge (voxels).

    Returns
    -------
    numpy.ndarray
        float32 block.
    """
    starts = [max(0, (n - size) // 2) for n in volume.shape]
    z0, y0, x0 = starts
    planes = np.asarray(volume[z0:z0 + min(size, volume.shape[0])], dtype=np.float32)
    return np.ascontiguousarray(planes[:, y0:y0 + size, x0:x0 + size])


def half_map_weights(half1, half2, crop: int = FSC_CROP) -> Tuple[np.ndarray, np.ndarray]:
    """Shell frequencies and ``C_ref`` weights of two half maps, from their central blocks.

    Parameters
    ----------
    half1, half2 : array_like
        ``(z, y, x)`` of one shape (arrays, memory maps or plane readers).
    crop : int
        Largest edge of the central block compared (voxels).

    Returns
    -------
    freq : numpy.ndarray
        ``(n_shells,)`` cycles/voxel.
    weights : numpy.ndarray
        ``(n_shells,)`` in [0, 1] (:func:`fsc_weights`).

    Raises
    ------
    ValueError
        The half maps differ in shape.
    """
    if tuple(half1.shape) != tuple(half2.shape):
        raise ValueError(f"half maps of different shapes: {tuple(half1.shape)} vs {tuple(half2.shape)}")
    freq, fsc = metrics.fsc(central_block(half1, crop), central_block(half2, crop))
    return freq, fsc_weights(fsc)


def radial_filter(shape: Sequence[int], freq: np.ndarray, weights: np.ndarray) -> torch.Tensor:
    """The isotropic filter of shell weights on the rfft grid of a volume.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume filtered.
    freq : numpy.ndarray
        Ascending shell frequencies (cycles/voxel).
    weights : numpy.ndarray
        Weight of each shell.

    Returns
    -------
    torch.Tensor
        float32 ``fourier.fft_shape(shape, rfft=True)``: 1 at DC, the weights linearly
        interpolated at ``|k|`` between shells, the last weight beyond the last shell.
    """
    radius = fourier.radial_freq(shape, rfft=True, dtype=torch.float64).numpy()
    xp = np.concatenate([[0.0], np.asarray(freq, dtype=np.float64)])
    fp = np.concatenate([[1.0], np.asarray(weights, dtype=np.float64)])
    return torch.from_numpy(np.interp(radius, xp, fp).astype(np.float32))


def mean_planes(halves: Sequence, z0: int, z1: int) -> np.ndarray:
    """The voxel-wise mean of maps' z planes.

    Parameters
    ----------
    halves : sequence of array_like
        Maps ``(z, y, x)`` of one shape (arrays, memory maps or plane readers).
    z0, z1 : int
        The planes ``z0 .. z1 - 1``.

    Returns
    -------
    numpy.ndarray
        float32 ``(z1 - z0, y, x)``, summed in float32 and divided by the number of maps.
    """
    mean = np.array(halves[0][z0:z1], dtype=np.float32)
    for h in halves[1:]:
        mean += np.asarray(h[z0:z1], dtype=np.float32)
    mean /= np.float32(len(halves))
    return mean


def weighted_average_planes(halves: Sequence, freq: np.ndarray, weights: np.ndarray, *,
                            block_planes: int, margin: int = MARGIN_PLANES) -> Iterator[np.ndarray]:
    """The average of the half maps, FSC-weighted, block of z planes by block.

    Parameters
    ----------
    halves : sequence of array_like
        The half maps ``(z, y, x)``, one shape (arrays, memory maps or plane readers).
    freq, weights : numpy.ndarray
        Shell frequencies (cycles/voxel) and weights (:func:`half_map_weights`).
    block_planes : int
        z planes per block handed out.
    margin : int
        Context planes filtered with each block on each side (periodic beyond the faces, as one
        FFT of the whole volume).

    Yields
    ------
    numpy.ndarray
        float32 ``(k, y, x)`` blocks in increasing z, every plane once.
    """
    nz = int(halves[0].shape[0])
    if nz <= block_planes + 2 * margin:             # one FFT of the whole volume
        mean = mean_planes(halves, 0, nz)
        out = fourier.apply_fourier_filter(torch.from_numpy(mean), radial_filter(mean.shape, freq, weights)).numpy()
        for z0 in range(0, nz, block_planes):
            yield np.ascontiguousarray(out[z0:z0 + block_planes])
        return
    cache = {}
    for z0 in range(0, nz, block_planes):
        z1 = min(nz, z0 + block_planes)
        lo, hi = z0 - margin, z1 + margin
        # periodic beyond the faces (as one FFT of the volume); nz > block + 2 margin, so the
        # wrapped planes never overlap the block's own
        parts = [mean_planes(halves, nz + lo, nz)] if lo < 0 else []
        parts.append(mean_planes(halves, max(lo, 0), min(hi, nz)))
        if hi > nz:
            parts.append(mean_planes(halves, 0, hi - nz))
        block = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if block.shape not in cache:
            cache[block.shape] = radial_filter(block.shape, freq, weights)
        out = fourier.apply_fourier_filter(torch.from_numpy(block), cache[block.shape]).numpy()
        yield np.ascontiguousarray(out[z0 - lo: z1 - lo])
