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
``FSC_CROP`` voxels per axis (bounded memory); the filter is then applied to the average tile
by tile (:func:`weighted_average_planes`): cubes of ``TILE`` voxels, each with ``margin``
voxels of context on every side (periodic beyond the faces, as one FFT of the whole volume
would take them), one FFT per tile, handed out in blocks of z planes; a map of at most
``WHOLE_VOXELS`` voxels is filtered with one FFT. Memory: one tile's window, one y row of
windows read from the maps and one output block, whatever the map's size.
Frequencies are in cycles/voxel; ``(z, y, x)`` volumes.
"""
from __future__ import annotations

from typing import Iterator, Optional, Sequence, Tuple

import numpy as np
import torch

from isonet2core.imaging import fourier, metrics

FSC_CROP = 160
"""Largest edge (voxels) of the central block on which the half maps' FSC is measured."""

TILE = 64
"""Edge (voxels) of a tile's core, and the most z planes of a block, when a map is filtered tile
by tile (:func:`weighted_average_planes`)."""

WHOLE_VOXELS = 4 * 1024 * 1024
"""The largest map (voxels) filtered with one FFT of the whole volume (16 MiB as float32)."""

MARGIN_PLANES = 24
"""Context voxels on each side of a filtered tile: the filter's point-spread function is cut
there (on noise, with weights falling from 1 to 0 over half the band, the tile-wise result stays
within 3.0 % of the map's standard deviation of one whole-volume filter, 0.4 % rms; 1.9 % and
0.3 % with 32; z blocks alone, the whole y-x extent: 1.9 %)."""


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


def mean_planes(halves: Sequence, z0: int, z1: int, y0: int = 0, y1: Optional[int] = None) -> np.ndarray:
    """The voxel-wise mean of maps' z planes (or of rows of them).

    Parameters
    ----------
    halves : sequence of array_like
        Maps ``(z, y, x)`` of one shape (arrays, memory maps or plane readers).
    z0, z1 : int
        The planes ``z0 .. z1 - 1``.
    y0, y1 : int, optional
        Their rows ``y0 .. y1 - 1`` (default: all).

    Returns
    -------
    numpy.ndarray
        float32 ``(z1 - z0, y1 - y0, x)``, summed in float32 and divided by the number of maps.
    """
    def read(h):
        return h[z0:z1] if y0 == 0 and y1 in (None, h.shape[1]) else h[z0:z1, y0:y1]
    mean = np.array(read(halves[0]), dtype=np.float32)
    for h in halves[1:]:
        mean += np.asarray(read(h), dtype=np.float32)
    mean /= np.float32(len(halves))
    return mean


def weighted_average_planes(halves: Sequence, freq: np.ndarray, weights: np.ndarray, *,
                            block_planes: int, margin: Optional[int] = None, tile: Optional[int] = None,
                            whole_voxels: Optional[int] = None) -> Iterator[np.ndarray]:
    """The average of the half maps, FSC-weighted, block of z planes by block.

    A map of at most ``whole_voxels`` voxels is filtered with one FFT; a larger one tile by
    tile (module documentation): blocks of at most ``min(block_planes, tile)`` z planes, each
    cut into ``tile`` x ``tile`` y-x tiles filtered with ``margin`` voxels of periodic context on
    every side (an axis no longer than ``tile + 2 margin`` is taken whole instead), so the
    memory is bounded by the tile's window and one output block, whatever the map's size.

    Parameters
    ----------
    halves : sequence of array_like
        The half maps ``(z, y, x)``, one shape (arrays, memory maps or plane readers: read as
        ``h[z0:z1, y0:y1]``).
    freq, weights : numpy.ndarray
        Shell frequencies (cycles/voxel) and weights (:func:`half_map_weights`).
    block_planes : int
        At most this many z planes per block handed out.
    margin : int, optional
        Context voxels filtered with each tile on each side (periodic beyond the faces, as one
        FFT of the whole volume); default :data:`MARGIN_PLANES`.
    tile : int, optional
        Edge of a tile's core (voxels); default :data:`TILE`.
    whole_voxels : int, optional
        The largest map filtered with one FFT; default :data:`WHOLE_VOXELS`.

    Yields
    ------
    numpy.ndarray
        float32 ``(k, y, x)`` blocks in increasing z, every plane once.
    """
    margin = MARGIN_PLANES if margin is None else margin
    tile = TILE if tile is None else tile
    nz, ny, nx = (int(n) for n in halves[0].shape)
    if nz * ny * nx <= (WHOLE_VOXELS if whole_voxels is None else whole_voxels):             # one FFT of the whole volume
        mean = mean_planes(halves, 0, nz)
        out = fourier.apply_fourier_filter(torch.from_numpy(mean), radial_filter(mean.shape, freq, weights)).numpy()
        for z0 in range(0, nz, block_planes):
            yield np.ascontiguousarray(out[z0:z0 + block_planes])
        return
    (cz, mz), (cy, my), (cx, mx) = (_axis_tiling(n, c, margin)
                                    for n, c in ((nz, min(block_planes, tile)), (ny, tile), (nx, tile)))
    cache = {}
    for z0 in range(0, nz, cz):
        z1 = min(nz, z0 + cz)
        zs = np.arange(z0 - mz, z1 + mz) % nz
        out = np.empty((z1 - z0, ny, nx), dtype=np.float32)
        for y0 in range(0, ny, cy):
            y1 = min(ny, y0 + cy)
            rows = _mean_window(halves, zs, np.arange(y0 - my, y1 + my) % ny)
            for x0 in range(0, nx, cx):
                x1 = min(nx, x0 + cx)
                block = np.ascontiguousarray(rows[:, :, np.arange(x0 - mx, x1 + mx) % nx])
                if block.shape not in cache:
                    cache[block.shape] = radial_filter(block.shape, freq, weights)
                filtered = fourier.apply_fourier_filter(torch.from_numpy(block), cache[block.shape]).numpy()
                out[:, y0:y1, x0:x1] = filtered[mz:mz + z1 - z0, my:my + y1 - y0, mx:mx + x1 - x0]
            del rows
        yield out


def _axis_tiling(n: int, core: int, margin: int) -> Tuple[int, int]:
    """``(core, margin)`` of one axis: the whole axis without context when it is no longer than
    a tile with its margins, else ``core`` with ``margin``."""
    return (n, 0) if n <= core + 2 * margin else (core, margin)


def _runs(indices: np.ndarray) -> Iterator[Tuple[int, int]]:
    """``(i0, i1)``: the stretches of ``indices`` that increase by one."""
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    bounds = np.concatenate([[0], breaks, [len(indices)]])
    return zip(bounds[:-1].tolist(), bounds[1:].tolist())


def _mean_window(halves: Sequence, zs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """The maps' mean at the z planes ``zs`` and y rows ``ys`` (increasing runs, wrapping
    around), every x: float32 ``(len(zs), len(ys), x)``, read run by run."""
    out = np.zeros((len(zs), len(ys), int(halves[0].shape[2])), dtype=np.float32)
    for i0, i1 in _runs(zs):
        for j0, j1 in _runs(ys):
            for h in halves:
                out[i0:i1, j0:j1] += np.asarray(h[int(zs[i0]):int(zs[i1 - 1]) + 1, int(ys[j0]):int(ys[j1 - 1]) + 1],
                                                dtype=np.float32)
    out /= np.float32(len(halves))
    return out
