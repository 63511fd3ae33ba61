"""Sampling masks of tomograms (IsoNet ``make_mask``): keep dense, structured regions.

``make_mask(volume, cfg)`` on a protein-dark ``(z, y, x)`` tomogram (best a deconvolved or
denoised one):

1. bin 2x (mean of 2x2x2 blocks; odd sizes padded by repeating the last slice);
2. smooth with a Gaussian of ``sigma = patch_size / 2`` binned voxels;
3. density: the local maximum of the *inverted* smoothed map (protein dark, so dense matter
   becomes high) over a cube of ``2 * patch_size + 1`` binned voxels; keep voxels in the top
   ``density_percentage`` percent;
4. structure: the local standard deviation of the smoothed map over the same cube; keep voxels
   in the top ``std_percentage`` percent;
5. combine: both criteria must hold (a percentage of 100 disables its criterion);
6. z crop: clear ``z_crop / 2`` of the binned thickness at the top and at the bottom (the
   empty ice/vacuum above and below the specimen, where missing-wedge streaks live);
7. upsample back to the input shape (each binned voxel covers its 2x2x2 block).

Edges are mirrored (``reflect``: ``d c b a | a b c d``). "Top ``p`` percent" keeps
``values >= numpy.percentile(values, 100 - p)`` over the binned voxels, computed without every
value at once: the two order statistics numpy interpolates between (:func:`percentile_ranks`)
are found exactly by two histograms of the values' order-preserving 32-bit keys (top 16 bits,
then the low 16 bits within the bins holding the ranks), and numpy interpolates between them.

:func:`mask_star` then multiplies the mask of a STAR row naming an IMOD model in
``rlnMaskBoundary`` by the region the model outlines (:mod:`isonet2core.io.boundary`, the official
IsoNet2's rule).

The result is a uint8 ``(z, y, x)`` array of 0 (excluded) and 1 (sampled).

Bounded memory (:func:`mask_file`, what ``make-mask`` runs): the steps work on slabs of binned z
planes (:func:`plan_mask` sizes them within ``memory_gb``, :func:`isonet2core.memory.work_budget`),
each computed with a halo of ``3 * patch_size`` binned planes (the Gaussian's radius ``2 *
patch_size`` and the windows' ``patch_size``); the Gaussian and the windows are separable,
filtered along z on the slab with its halo and along y and x on its own planes, so every
voxel gets the same arithmetic as in one slab and the mask equals the whole-volume mask
exactly (tests/core/test_masking.py). The binned planes are made from pairs of z planes read
on demand (positioned reads); the density and standard deviation of every binned voxel (an
eighth of the voxels, float32 each) are kept in memory or, when they do not fit, in scratch
files beside the output (:mod:`isonet2core.io.scratch`) for the thresholds' second histogram
and the last pass, which streams the mask into its MRC file. One slab holds the whole volume
when it fits ``min(budget, STREAM_BYTES)``. A tomogram whose smallest slab does not fit the
budget is refused before any work, naming the file, the budget and the minimum.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import scipy.ndimage as ndi

from isonet2core import memory
from isonet2core.config import MaskConfig
from isonet2core.io import boundary, mrcio, output_names, star
from isonet2core.io.output_names import PathLike
from isonet2core.io.scratch import MemoryArray, ScratchArray, scratch_array
from isonet2core.steps import step_inputs

logger = logging.getLogger(__name__)

STREAM_BYTES = memory.STREAM_BYTES
"""Working set of the slabs when the budget allows more (larger slabs are not faster)."""
_KEY_CHUNK = 1 << 16       # values turned into keys at a time by the threshold histograms


def bin2(volume: np.ndarray) -> np.ndarray:
    """Mean of 2x2x2 blocks of a volume.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(z, y, x)``.

    Returns
    -------
    numpy.ndarray
        float32, ``ceil(n / 2)`` per axis.
    """
    v = np.asarray(volume, dtype=np.float32)
    pad = [(0, n % 2) for n in v.shape]
    if any(p for _, p in pad):
        v = np.pad(v, pad, mode="edge")
    nz, ny, nx = (n // 2 for n in v.shape)
    return v.reshape(nz, 2, ny, 2, nx, 2).mean(axis=(1, 3, 5), dtype=np.float32)


def _reflected(indices: np.ndarray, n: int) -> np.ndarray:
    """Indices beyond ``0 .. n - 1`` mirrored (``reflect``: ``d c b a | a b c d``, repeated)."""
    period = np.mod(indices, 2 * n)
    return np.where(period < n, period, 2 * n - 1 - period)


def _extended(planes: np.ndarray, first: int, start: int, stop: int, n: int) -> np.ndarray:
    """Planes ``start .. stop - 1`` of a volume of ``n`` planes (mirrored beyond its edges) from
    ``planes``, its planes ``first ..``; a view when no plane is mirrored."""
    index = _reflected(np.arange(start, stop), n) - first
    if np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return planes[index[0]:index[0] + len(index)]
    return planes[index]


def _window_std(extended: np.ndarray, size: int) -> np.ndarray:
    """Standard deviation over cubes of ``size`` (odd): along z over the planes of ``extended``
    (``size - 1`` more than the result's), along y and x mirrored within each plane."""
    count = len(extended) - size + 1
    total = extended[:count].astype(np.float64)
    total_sq = np.square(extended[:count], dtype=np.float64)
    for k in range(1, size):
        total += extended[k:k + count]
        total_sq += np.square(extended[k:k + count], dtype=np.float64)
    for values in (total, total_sq):
        values /= size
        for axis in (1, 2):
            ndi.uniform_filter1d(values, size, axis=axis, output=values, mode="reflect")
    total *= total
    total_sq -= total
    del total
    np.maximum(total_sq, 0.0, out=total_sq)
    np.sqrt(total_sq, out=total_sq)
    return total_sq.astype(np.float32)


def local_std(volume: np.ndarray, size: int) -> np.ndarray:
    """Standard deviation over a cube around every voxel (reflect edges), as :func:`make_mask`
    computes it: along z by sums over the window, along y and x by running means.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(z, y, x)``.
    size : int
        Cube edge (voxels), odd.

    Returns
    -------
    numpy.ndarray
        float32, shape of ``volume``.

    Raises
    ------
    ValueError
        An even or non-positive ``size``.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"local_std needs an odd window of at least 1 voxel, got {size}")
    v = np.asarray(volume, dtype=np.float32)
    half = size // 2
    return _window_std(_extended(v, 0, -half, len(v) + half, len(v)), size)


class _BinnedPlanes:
    """The 2x binned z planes of a volume (:func:`bin2` of each pair of z planes, read on
    demand), the last range asked for kept to serve the next, overlapping one."""

    def __init__(self, volume):
        self.volume = volume
        nz, ny, nx = volume.shape
        self.shape = (-(-nz // 2), -(-ny // 2), -(-nx // 2))
        self._first, self._planes = 0, np.empty((0,) + self.shape[1:], dtype=np.float32)

    def get(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start,) + self.shape[1:], dtype=np.float32)
        held_stop = self._first + len(self._planes)
        for i in range(start, stop):
            if self._first <= i < held_stop:
                out[i - start] = self._planes[i - self._first]
            else:
                out[i - start] = bin2(self.volume[2 * i:min(2 * i + 2, self.volume.shape[0])])[0]
        self._first, self._planes = start, out
        return out


def gaussian_radius(patch_size: int) -> int:
    """The radius of the smoothing Gaussian (``sigma = patch_size / 2``, truncated at 4 sigma as
    ``scipy.ndimage.gaussian_filter``).

    Parameters
    ----------
    patch_size : int
        Binned voxels.

    Returns
    -------
    int
        Binned voxels.
    """
    return int(4.0 * (patch_size / 2.0) + 0.5)


def _density_and_std(binned: _BinnedPlanes, start: int, stop: int,
                     patch_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Density (local maximum of the inverted smoothed map) and local std of binned planes
    ``start .. stop - 1``, from the binned planes with their halo."""
    n = binned.shape[0]
    p, sigma, window = int(patch_size), patch_size / 2.0, 2 * int(patch_size) + 1
    rg = gaussian_radius(patch_size)
    a, b = max(0, start - p), min(n, stop + p)                   # smoothed planes needed
    s0, s1 = max(0, a - rg), min(n, b + rg)                      # binned planes needed
    smooth = ndi.gaussian_filter1d(_extended(binned.get(s0, s1), s0, a - rg, b + rg, n), sigma, axis=0,
                                   mode="reflect")[rg:rg + b - a]
    for axis in (1, 2):
        ndi.gaussian_filter1d(smooth, sigma, axis=axis, output=smooth, mode="reflect")
    around = _extended(smooth, a, start - p, stop + p, n)
    density = ndi.maximum_filter1d(-around, window, axis=0, mode="reflect")[p:p + stop - start]
    for axis in (1, 2):
        ndi.maximum_filter1d(density, window, axis=axis, output=density, mode="reflect")
    return np.ascontiguousarray(density), _window_std(around, window)


def _keys(values: np.ndarray) -> np.ndarray:
    """Order-preserving uint32 keys of float32 values (``a < b`` iff ``key(a) < key(b)``, but
    ``-0.0`` below ``0.0``)."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    return np.where(bits >> 31 == 1, ~bits, bits | np.uint32(0x80000000))


def _value_of_key(key: int) -> float:
    bits = key ^ 0x80000000 if key & 0x80000000 else ~key & 0xFFFFFFFF
    return float(np.array([bits], dtype=np.uint32).view(np.float32)[0])


def percentile_ranks(count: int, percentage: float) -> Optional[Tuple[int, int, float]]:
    """Where "top ``percentage`` percent" of ``count`` values puts its threshold: the two 0-based
    ascending ranks that ``numpy.percentile(values, 100 - percentage)`` interpolates between and
    its interpolation weight, computed with numpy's own arithmetic (method ``linear``).

    Parameters
    ----------
    count : int
        Number of values.
    percentage : float
        In (0, 100].

    Returns
    -------
    tuple of (int, int, float) or None
        ``(low, high, weight)``; None for 100 (every value kept).
    """
    if percentage >= 100:
        return None
    index = (count - 1) * np.true_divide(100.0 - percentage, 100)
    if index >= count - 1:
        return count - 1, count - 1, 0.0
    low = int(np.floor(index))
    return low, low + 1, float(index - low)


def _threshold(low: float, high: float, weight: float):
    """``numpy.percentile``'s threshold from its two order statistics: numpy's interpolation of a
    float32 pair (the same dtypes and rounding as on the whole array)."""
    return np.quantile(np.array([low, high], dtype=np.float32), weight)


class _OrderStatistics:
    """The exact values of a few ranks among float32 values seen slab by slab, in two passes:
    histograms of the top 16 bits of their keys, then of the low 16 bits within the bins that
    hold the ranks."""

    def __init__(self, ranks: Sequence[int]):
        self.ranks = list(ranks)
        self.high = np.zeros(1 << 16, dtype=np.int64)
        self.low: dict = {}
        self._first = True

    def add(self, values: np.ndarray) -> None:
        flat = values.reshape(-1)
        for i in range(0, flat.size, _KEY_CHUNK):
            keys = _keys(flat[i:i + _KEY_CHUNK])
            if self._first:
                self.high += np.bincount(keys >> 16, minlength=1 << 16)
                continue
            for top, counts in self.low.items():
                counts += np.bincount(keys[(keys >> 16) == top] & 0xFFFF, minlength=1 << 16)

    def first_pass_done(self) -> None:
        self._first = False
        self._below = np.cumsum(self.high)
        self.low = {self._bin(rank): np.zeros(1 << 16, dtype=np.int64) for rank in self.ranks}

    def _bin(self, rank: int) -> int:
        return int(np.searchsorted(self._below, rank, side="right"))

    def values(self) -> List[float]:
        out = []
        for rank in self.ranks:
            top = self._bin(rank)
            within = rank - (int(self._below[top - 1]) if top else 0)
            low = int(np.searchsorted(np.cumsum(self.low[top]), within, side="right"))
            out.append(_value_of_key((top << 16) | low))
        return out


Store = Union[MemoryArray, ScratchArray]


@dataclass(frozen=True)
class MaskPlan:
    """How :func:`mask_file` works through one tomogram (:func:`plan_mask`).

    ``shape``: the tomogram's ``(z, y, x)``; ``slab_planes``: binned z planes per slab of the
    filters; ``out_planes``: binned z planes per block of the last pass; ``in_memory``: the
    density and std of every binned voxel stay in memory (else in scratch files);
    ``peak_bytes``: the estimated peak of its arrays; ``scratch_bytes``: the size of its scratch
    files (0: none).
    """
    shape: Tuple[int, int, int]
    slab_planes: int
    out_planes: int
    in_memory: bool
    peak_bytes: int
    scratch_bytes: int


def _mask_costs(shape: Tuple[int, int, int], patch_size: int, read: int) -> Tuple[int, int, int]:
    """``(per_plane, fixed, per_out_plane)``: bytes of a slab per binned plane and its fixed part
    (the halo, the reads of a pair of planes, the key chunks), and of the last pass per binned
    plane."""
    nz, ny, nx = shape
    binned = (-(-ny // 2)) * (-(-nx // 2))
    halo = 2 * patch_size + 2 * gaussian_radius(patch_size)
    # per binned plane of the slab and of its halo: the binned planes, the z-filtered planes (and
    # a mirrored copy at the volume's edges); per plane of the slab: the density's copies, the
    # std's float64 sums and square, the results (calibrated with tracemalloc and ru_maxrss on
    # 160x1024x1024: 268 MiB for a slab of 15 planes, 160 + 15 * 48 * 256 KiB estimated)
    per_plane = binned * 48
    keys = min(_KEY_CHUNK, binned * (-(-nz // 2))) * 24
    fixed = binned * (12 * halo + 12 * patch_size) + 2 * ny * nx * (read + 8) + keys
    per_out = binned * 9 + 2 * ny * nx * 14      # density, std, kept; the planes, their float32
    return per_plane, fixed, per_out


def plan_mask(shape: Sequence[int], cfg: MaskConfig, *, work_bytes: Optional[int],
              stored_itemsize: int = 4, n_maps: int = 1, name: str = "volume",
              budget: Optional[str] = None) -> MaskPlan:
    """How to make a tomogram's mask within a memory budget (module documentation).

    Parameters
    ----------
    cfg : MaskConfig
        ``patch_size`` sets the halo.
    shape, work_bytes, stored_itemsize, n_maps, name, budget
        As in :func:`isonet2core.steps.deconv.plan_deconv` (``STREAM_BYTES`` bounds the slabs).

    Returns
    -------
    MaskPlan
        Slab sizes, where the density and std stay, the estimated peak.

    Raises
    ------
    ValueError
        Naming the tomogram, the budget and the minimum: a slab of one binned plane does not fit
        ``work_bytes``.
    """
    nz, ny, nx = (int(n) for n in shape)
    shape3 = (nz, ny, nx)
    n = -(-nz // 2)
    values = n * (-(-ny // 2)) * (-(-nx // 2)) * 8          # density and std, float32
    per_plane, fixed, per_out = _mask_costs(shape3, int(cfg.patch_size), n_maps * (4 + int(stored_itemsize)))
    target = STREAM_BYTES if work_bytes is None else max(0, min(int(work_bytes), STREAM_BYTES))
    minimum = max(per_plane + fixed, per_out)
    if work_bytes is not None and minimum > work_bytes:
        left = "nothing" if work_bytes <= 0 else memory.format_bytes(work_bytes)
        raise ValueError(f"{name}: its mask ({nz}x{ny}x{nx} (z, y, x) voxels, slabs of one binned "
                         f"plane) needs at least {memory.format_bytes(minimum)}, but the memory budget "
                         f"{budget or 'given'} leaves {left} for it; give a larger memory_gb or run "
                         "where more memory is free")
    in_memory = values + minimum <= target and (
        values + max(n * per_plane + fixed, n * per_out) <= target or values <= target // 4)
    room = target - (values if in_memory else 0)
    slab = int(min(n, max(1, (room - fixed) // per_plane)))
    out = int(min(n, max(1, room // per_out)))
    peak = max(slab * per_plane + fixed, out * per_out) + (values if in_memory else 0)
    return MaskPlan(shape3, slab, out, in_memory, peak, 0 if in_memory else values)


def _mask_planes(volume, cfg: MaskConfig, plan: MaskPlan, stores: Tuple[Store, Store]) -> Iterator[Tuple[int, np.ndarray]]:
    """The mask of ``volume`` (:class:`step_inputs.MapPlanes` or array), uint8 z plane blocks in
    order, with ``stores`` holding the binned density and std."""
    nz, ny, nx = plan.shape
    binned = _BinnedPlanes(volume)
    n = binned.shape[0]
    crop = z_crop_slices(n, cfg.z_crop)
    count = n * binned.shape[1] * binned.shape[2]
    ranks = [percentile_ranks(count, cfg.density_percentage), percentile_ranks(count, cfg.std_percentage)]
    selectors = [None if r is None else _OrderStatistics(r[:2]) for r in ranks]
    for start in range(0, n, plan.slab_planes):
        stop = min(start + plan.slab_planes, n)
        for store, values, selector in zip(stores, _density_and_std(binned, start, stop, cfg.patch_size),
                                           selectors):
            store.write(start, values)
            if selector is not None:
                selector.add(values)
    del binned
    for selector in selectors:
        if selector is not None:
            selector.first_pass_done()
    if any(s is not None for s in selectors):
        for start in range(0, n, plan.out_planes):
            for store, selector in zip(stores, selectors):
                if selector is not None:
                    selector.add(store.read(start, min(start + plan.out_planes, n)))
    thresholds: List[Optional[np.floating]] = []
    for selector, rank in zip(selectors, ranks):
        if selector is None or rank is None:
            thresholds.append(None)
        else:
            low, high = selector.values()
            thresholds.append(_threshold(low, high, rank[2]))
    for start in range(0, n, plan.out_planes):
        stop = min(start + plan.out_planes, n)
        keep = np.ones((stop - start,) + binned_shape(plan.shape)[1:], dtype=bool)
        for store, threshold in zip(stores, thresholds):
            if threshold is not None:
                keep &= store.read(start, stop) >= threshold
        keep[:max(0, min(stop, crop) - start)] = False
        keep[max(0, n - crop - start):] = False
        full = np.repeat(np.repeat(np.repeat(keep, 2, axis=0), 2, axis=1), 2, axis=2)
        yield 2 * start, full[:max(0, min(nz, 2 * stop) - 2 * start), :ny, :nx].astype(np.uint8)


def binned_shape(shape: Sequence[int]) -> Tuple[int, int, int]:
    """The shape of the 2x binned volume (:func:`bin2`).

    Parameters
    ----------
    shape : sequence of int
        The unbinned volume's ``(z, y, x)``.

    Returns
    -------
    tuple of int
        ``ceil(n / 2)`` per axis.
    """
    nz, ny, nx = (int(n) for n in shape)
    return -(-nz // 2), -(-ny // 2), -(-nx // 2)


def _check_volume(v, cfg: MaskConfig) -> None:
    if not isinstance(cfg, MaskConfig):
        raise ValueError(f"expected a config.MaskConfig, got {type(cfg).__name__}")
    cfg.validate()
    if getattr(v, "ndim", None) != 3 or min(v.shape) < 2:
        raise ValueError(f"expected a volume (z, y, x) of at least 2 voxels per axis, got shape "
                         f"{getattr(v, 'shape', None)}")


def make_mask(volume: np.ndarray, cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """Sampling mask of a protein-dark tomogram in memory (steps: module documentation).

    Parameters
    ----------
    volume : numpy.ndarray
        ``(z, y, x)``.
    cfg : MaskConfig
        Density and std percentages, z crop, patch size.

    Returns
    -------
    numpy.ndarray
        uint8 0/1, shape of ``volume``.

    Raises
    ------
    ValueError
        A volume that is not 3D, has fewer than 2 voxels along an axis, is not finite or is
        constant.
    """
    v = np.asarray(volume)
    _check_volume(v, cfg)
    if not np.all(np.isfinite(v)):
        raise ValueError("the volume to mask has NaN or infinite voxels")
    if float(v.max()) == float(v.min()):
        raise ValueError("the volume to mask is constant (no contrast)")
    n, ny, nx = binned_shape(v.shape)
    plan = MaskPlan(tuple(v.shape), n, n, True, 0, 0)   # type: ignore[arg-type]
    stores = (MemoryArray((n, ny, nx), np.float32), MemoryArray((n, ny, nx), np.float32))
    full = np.empty(v.shape, dtype=np.uint8)
    for z0, planes in _mask_planes(v, cfg, plan, stores):
        full[z0:z0 + len(planes)] = planes
    logger.info("mask keeps %.1f%% of the volume", 100.0 * full.mean())
    return full


def mask_file(sources: Sequence[PathLike], target: PathLike, cfg: MaskConfig, *,
              voxel_size_a: float, plan: Optional[MaskPlan] = None,
              region: Optional[boundary.BoundaryRegion] = None,
              protect: Iterable[PathLike] = ()) -> float:
    """The mask of a map (or of the mean of two half maps) into a float32 0/1 MRC file, within the
    memory of ``plan``; written atomically, never over an input.

    Parameters
    ----------
    sources, voxel_size_a, protect
        As in :func:`isonet2core.steps.deconv.deconvolve_file`.
    target : str or Path
        The mask file; scratch files lie beside it while it is computed.
    cfg : MaskConfig
        Mask settings.
    plan : MaskPlan, optional
        From :func:`plan_mask` for this map's shape (default: planned here with no budget but
        ``STREAM_BYTES``).
    region : BoundaryRegion, optional
        Only this region is kept (``rlnMaskBoundary``).

    Returns
    -------
    float
        The fraction of voxels kept.

    Raises
    ------
    ValueError
        Naming the map: a plan for another shape, a mask with no voxel inside ``region`` (no
        file is written then).
    """
    reader = step_inputs.open_map([Path(p) for p in sources])
    _check_volume(reader, cfg)
    plan = step_inputs.map_plan(reader, plan, functools.partial(plan_mask, cfg=cfg), "mask")
    binned = binned_shape(plan.shape)
    logger.info("%s: mask of %s voxels in slabs of %d binned z planes (density and std %s)",
                reader.name, "x".join(map(str, plan.shape)), plan.slab_planes,
                "in memory" if plan.in_memory else "in scratch files")
    protected = [*reader.paths, *protect]
    mrcio.check_not_input(target, protected)
    kept = 0
    with contextlib.ExitStack() as stack:
        stores: Tuple[Store, ...] = tuple(
            MemoryArray(binned, np.float32) if plan.in_memory
            else stack.enter_context(scratch_array(target, binned, np.float32)) for _ in range(2))
        out = stack.enter_context(mrcio.stream_mrc(target, plan.shape, voxel_size_a, protect=protected))
        for z0, planes in _mask_planes(reader, cfg, plan, (stores[0], stores[1])):
            if region is not None:
                planes *= region.planes(z0, z0 + len(planes))
            kept += int(np.count_nonzero(planes))
            out.write(planes)
        if region is not None and kept == 0:
            raise ValueError(f"no voxel of the mask of {reader.name} lies inside its mask boundary"
                             + (f" {region.source} (rlnMaskBoundary)" if region.source else ""))
    return kept / float(np.prod(plan.shape, dtype=np.float64))


def z_crop_slices(nz_binned: int, z_crop: float) -> int:
    """Binned z slices cleared at the top and, as many, at the bottom.

    Parameters
    ----------
    nz_binned : int
        Thickness of the 2x binned volume (``ceil(nz / 2)``).
    z_crop : float
        Fraction of the thickness removed in total.

    Returns
    -------
    int
        ``round(z_crop / 2 * nz_binned)``.

    Raises
    ------
    ValueError
        When no slice would be left (the mask would be empty).
    """
    crop = int(round(z_crop / 2.0 * nz_binned))
    if 2 * crop >= nz_binned:
        raise ValueError(f"z_crop {z_crop} clears {crop} of {nz_binned} binned z slices at the top and "
                         f"{crop} at the bottom: the mask would be empty; use a smaller --z_crop")
    return crop


def mask_star(star_file: PathLike, cfg: MaskConfig, output_dir: PathLike, *,
              input_column: str = star.DECONV,
              tomo_idx: Optional[Sequence[int]] = None) -> List[Tuple[str, Path, float]]:
    """``make-mask``: the sampling mask (:func:`make_mask`) of every tomogram of a STAR file.

    Every input is checked before any work, and so is the memory: each tomogram is planned
    (:func:`plan_mask`) within ``cfg.memory_gb`` (:func:`isonet2core.memory.work_budget`), a
    tomogram that cannot fit is refused, and the largest scratch files must fit on the disk
    beside the outputs. Each mask is then written by :func:`mask_file`, and after every
    tomogram its row of the STAR gets ``rlnMaskName`` (:func:`star.update_rows`: locked, re-read,
    written atomically). A row naming an IMOD model in ``rlnMaskBoundary`` keeps only the region
    the model outlines (:func:`isonet2core.io.boundary.region_of`).

    Parameters
    ----------
    star_file : path
        The tomograms STAR.
    cfg : MaskConfig
        Mask settings and memory budget.
    output_dir : path
        Folder of ``<rlnTomoName>_mask.mrc`` (float32 0/1, ``(z, y, x)``).
    input_column : str
        STAR column of the maps; an empty cell falls back to rlnTomoReconstructedTomogram,
        then to the mean of the even/odd halves.
    tomo_idx : sequence of int, optional
        rlnIndex values of the tomograms; None: all.

    Returns
    -------
    list of (str, Path, float)
        rlnTomoName, the file written and the fraction of voxels kept, per tomogram.

    Raises
    ------
    ValueError, FileNotFoundError, OSError
        Naming the tomogram and the file: an input that cannot be used (a map, a mask
        boundary, a z crop that clears every slice), a tomogram whose smallest slab does not
        fit the memory budget, no disk space for the outputs and scratch files; before any work.
    """
    cfg.validate()
    table = star.TomogramsTable.read(star_file)
    jobs = step_inputs.plan_map_jobs(table, tomo_idx, input_column,
                              lambda name: output_names.mask_path(output_dir, name),
                              star.MASK)
    pixel_size_a = {job.row: table.microscope(job.row).pixel_size_a for job in jobs}   # checked first
    for job in jobs:
        try:
            z_crop_slices(-(-job.infos[0].shape[0] // 2), cfg.z_crop)
        except ValueError as exc:
            raise ValueError(f"tomogram {job.name} ({job.sources[0]}): {exc}") from None
    boundaries = {job.row: table.path(job.row, star.MASK_BOUNDARY) if table.has_column(star.MASK_BOUNDARY)
                  else None for job in jobs}
    regions = {}
    for job in jobs:   # checked first: a boundary that keeps nothing is refused before any work
        model = boundaries[job.row]
        if model is not None:
            try:
                regions[job.row] = boundary.region_of(model, job.infos[0].shape)
            except (ValueError, FileNotFoundError) as exc:
                raise type(exc)(f"tomogram {job.name}: {exc}") from None
    plans, budget = step_inputs.plan_memory(jobs, cfg.memory_gb, functools.partial(plan_mask, cfg=cfg))
    logger.info("make-mask: memory budget %s", budget or "unknown")
    Path(output_dir).mkdir(parents=True, exist_ok=True)   # an unusable folder fails here, not after work
    done = []
    for job in jobs:
        try:
            kept = mask_file(job.sources, job.target, cfg, voxel_size_a=pixel_size_a[job.row],
                             plan=plans[job.row], region=regions.get(job.row))
        except ValueError as exc:
            raise ValueError(f"tomogram {job.name}: {exc}") from None
        if job.row in regions:
            logger.info("make-mask: %s: the region of %s kept", job.name, boundaries[job.row])
        star.update_rows(star_file, {(job.name, table.index(job.row)): {star.MASK: job.target}})
        done.append((job.name, job.target, kept))
        logger.info("make-mask: %s -> %s (%.1f%% kept)", job.name, job.target, 100.0 * kept)
    return done
