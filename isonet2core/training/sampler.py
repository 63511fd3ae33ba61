"""Training cubes: where to cut them, and cutting them (refine step 1).

* **Sources.** A :class:`TomogramSource` holds one tomogram's maps (the even and odd halves of
  an N2N pair, or one map for single-map refine), each with its own global normalisation
  ``(mean, std)`` from :func:`isonet2core.normalize.normalization_stats` (central slices, the
  same statistics prediction uses), an optional sampling mask, its microscope (tilt range,
  CTF) and its number of cubes per epoch. :func:`open_source` reads them once: maps larger
  than ``MEMMAP_ABOVE_BYTES`` stay memory-mapped (:func:`isonet2core.mrcio.open_mrc`) and
  only the cubes are read.
* **Coordinates.** A cube of edge ``n`` centred at ``c`` covers ``[c - n//2, c - n//2 + n)``
  on each axis, so centres lie at least half a cube from every border; with a mask they are
  also voxels where the mask is non-zero. Even and odd cubes are cut at identical coordinates.
* **Reproducibility.** Epoch ``e`` draws from ``numpy.random.default_rng([seed, e])``: the plan
  of an epoch depends only on the seed and the epoch number, so a resumed run cuts exactly the
  cubes an uninterrupted one would.

Arrays are ``(z, y, x)``; cubes ``(n, n, n)``; batches of cubes ``(b, n, n, n)`` float32,
normalised ``(v - mean) / std`` (protein stays dark).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from isonet2core import mrcio, normalize
from isonet2core.config import Microscope
from isonet2core.planning import check_fits

log = logging.getLogger(__name__)

MEMMAP_ABOVE_BYTES = 512 * 1024 * 1024
"""Maps larger than this (as float32) are memory-mapped instead of loaded."""

_MAX_MASK_CANDIDATES = 20_000_000  # the mask is strided so that at most this many voxels are listed


@dataclass
class TomogramSource:
    """One tomogram prepared for sampling.

    ``maps``: one ``(z, y, x)`` array (single map) or two (even, odd), same shape;
    ``stats``: ``(mean, std)`` per map; ``mask``: optional ``(z, y, x)`` sampling mask (non-zero
    = allowed centre); ``n_subtomos``: cubes per epoch; ``name``: the tomogram's identifier;
    ``centres``: fixed cube centres ``(n, 3)`` (z, y, x) from a box file (rlnBoxFile), used
    every epoch instead of drawn ones (then ``n_subtomos == n``).
    """
    name: str
    maps: Tuple[np.ndarray, ...]
    stats: Tuple[Tuple[float, float], ...]
    microscope: Microscope
    n_subtomos: int
    mask: Optional[np.ndarray] = None
    centres: Optional[np.ndarray] = None
    _candidates: Optional[Tuple[np.ndarray, int]] = field(default=None, repr=False)

    @property
    def shape(self) -> Tuple[int, int, int]:
        """``(z, y, x)`` of the tomogram's maps."""
        z, y, x = (int(s) for s in self.maps[0].shape)
        return z, y, x


def _load(path: Path) -> np.ndarray:
    info = mrcio.read_header(path)
    if int(np.prod(info.shape)) * 4 > MEMMAP_ABOVE_BYTES:
        return mrcio.open_mrc(path, info=info)
    return mrcio.read_mrc(path)[0]


def read_box_file(path: Path, shape: Sequence[int], cube_size: int, name: str) -> np.ndarray:
    """Cube centres ``(n, 3)`` int64 in (z, y, x) from a box file (the STAR's rlnBoxFile, as
    the IsoNet2 program reads it): one centre per line, ``x y z`` in voxels in its first three
    columns (more columns are ignored; values are rounded).

    ``ValueError`` naming the file and line when it holds no centre, a line has fewer than three
    numbers, or a cube at a centre would leave the tomogram ``shape`` (z, y, x).
    """
    path = Path(path)
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        words = line.replace(",", " ").split()
        if not words or words[0].startswith("#"):
            continue
        try:
            x, y, z = (int(round(float(w))) for w in words[:3])
        except ValueError:
            raise ValueError(f"{path}, line {number}: expected x y z in voxels, got {line.strip()!r}") from None
        rows.append((number, (z, y, x)))
    if not rows:
        raise ValueError(f"{path}: no cube centre (x y z per line) for tomogram {name}")
    lo, hi = centre_bounds(shape, cube_size)
    for number, centre in rows:
        if any(c < low or c > high for c, low, high in zip(centre, lo, hi)):
            z, y, x = centre
            raise ValueError(f"{path}, line {number}: a cube of {cube_size} centred at x={x} y={y} "
                             f"z={z} leaves tomogram {name} of shape {tuple(shape)} (z, y, x)")
    return np.asarray([c for _, c in rows], dtype=np.int64)


def open_source(name: str, map_paths: Sequence[Path], microscope: Microscope, n_subtomos: int,
                cube_size: int, mask_path: Optional[Path] = None,
                box_path: Optional[Path] = None) -> TomogramSource:
    """Read (or memory-map) a tomogram's maps and mask, measure their normalisation; with a
    ``box_path``, its centres are the cubes of every epoch (:func:`read_box_file`).

    ``ValueError`` naming the file when shapes differ, the tomogram is smaller than the cube,
    a map is NaN/constant in its central slices, the mask allows no centre, or the box file is
    unusable.
    """
    maps = tuple(_load(Path(p)) for p in map_paths)
    shapes = {tuple(m.shape) for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"tomogram {name}: maps {', '.join(map(str, map_paths))} have different "
                         f"shapes {sorted(shapes)}")
    stats = tuple(normalize.normalization_stats(m, str(p)) for m, p in zip(maps, map_paths))
    mask = None
    if mask_path is not None:
        mask = _load(Path(mask_path))
        if tuple(mask.shape) != tuple(maps[0].shape):
            raise ValueError(f"mask {mask_path} has shape {tuple(mask.shape)}, but tomogram {name} "
                             f"has shape {tuple(maps[0].shape)}")
    check_fits(maps[0].shape, cube_size, name)
    centres = None if box_path is None else read_box_file(box_path, maps[0].shape, cube_size, name)
    src = TomogramSource(name, maps, stats, microscope,
                         int(n_subtomos) if centres is None else len(centres), mask, centres)
    if mask is not None:
        mask_candidates(src, cube_size, str(mask_path))
    return src


def centre_bounds(shape: Sequence[int], cube_size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Inclusive lowest and highest allowed centre per axis ``(z, y, x)``."""
    half = cube_size // 2
    lo = np.full(3, half)
    hi = np.array([int(s) - cube_size + half for s in shape])
    return lo, hi


def mask_candidates(src: TomogramSource, cube_size: int, mask_name: str = "mask") -> Tuple[np.ndarray, int]:
    """Allowed centres from the mask: flat indices into the strided valid region and the stride.

    The valid region (centres half a cube from the borders) is strided so that at most
    ``_MAX_MASK_CANDIDATES`` voxels are listed; a drawn candidate is then jittered within its
    stride cell (kept where the mask is non-zero). Cached on the source.
    """
    if src._candidates is not None:
        return src._candidates
    lo, hi = centre_bounds(src.shape, cube_size)
    valid = int(np.prod(hi - lo + 1))
    stride = max(1, int(math.ceil((valid / _MAX_MASK_CANDIDATES) ** (1.0 / 3.0))))
    assert src.mask is not None
    region = np.asarray(src.mask[lo[0]:hi[0] + 1:stride, lo[1]:hi[1] + 1:stride, lo[2]:hi[2] + 1:stride])
    flat = np.flatnonzero(region > 0)
    if flat.size == 0:
        raise ValueError(f"{mask_name}: the mask of tomogram {src.name} allows no cube centre at least "
                         f"half a cube ({cube_size // 2} voxels) from the borders")
    src._candidates = (flat, stride)
    return src._candidates


def sample_centres(src: TomogramSource, n: int, cube_size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` cube centres ``(n, 3)`` int64 in (z, y, x), inside the mask when there is one;
    a source with fixed ``centres`` (a box file) gives those."""
    if src.centres is not None:
        return src.centres.copy()
    lo, hi = centre_bounds(src.shape, cube_size)
    if src.mask is None:
        return rng.integers(lo, hi + 1, size=(n, 3))
    flat, stride = mask_candidates(src, cube_size)
    region_shape = tuple(len(range(lo[i], hi[i] + 1, stride)) for i in range(3))
    picks = np.stack(np.unravel_index(flat[rng.integers(0, flat.size, size=n)], region_shape), axis=1)
    centres = lo + picks * stride
    if stride > 1:
        jittered = np.minimum(centres + rng.integers(0, stride, size=(n, 3)), hi)
        keep = np.asarray([src.mask[tuple(c)] > 0 for c in jittered])
        centres = np.where(keep[:, None], jittered, centres)
    return centres.astype(np.int64)


def extract_cubes(volume: np.ndarray, centres: np.ndarray, cube_size: int,
                  mean: float, std: float) -> np.ndarray:
    """Normalised cubes ``(len(centres), n, n, n)`` float32 cut from ``volume`` at ``centres``."""
    half = cube_size // 2
    out = np.empty((len(centres), cube_size, cube_size, cube_size), dtype=np.float32)
    for i, (z, y, x) in enumerate(centres):
        cube = volume[z - half:z - half + cube_size, y - half:y - half + cube_size,
                      x - half:x - half + cube_size]
        out[i] = (np.asarray(cube, dtype=np.float32) - np.float32(mean)) / np.float32(std)
    return out


@dataclass(frozen=True)
class CubeRef:
    """One planned cube: the source index and its centre (z, y, x)."""
    source: int
    centre: Tuple[int, int, int]


def epoch_rng(seed: int, epoch: int, stream: int = 0) -> np.random.Generator:
    """The generator of one epoch (``stream`` separates independent uses: 0 cubes, 1 augmentations)."""
    return np.random.default_rng([int(seed), int(epoch), int(stream)])


def epoch_plan(sources: Sequence[TomogramSource], cube_size: int, seed: int, epoch: int) -> List[CubeRef]:
    """All cubes of epoch ``epoch``: ``n_subtomos`` per source, shuffled across sources."""
    rng = epoch_rng(seed, epoch, 0)
    refs: List[CubeRef] = []
    for i, src in enumerate(sources):
        for c in sample_centres(src, src.n_subtomos, cube_size, rng):
            refs.append(CubeRef(i, (int(c[0]), int(c[1]), int(c[2]))))
    order = rng.permutation(len(refs))
    return [refs[j] for j in order]


def batches(plan: Sequence[CubeRef], batch_size: int) -> List[List[CubeRef]]:
    """Split a plan into full batches (the remainder that does not fill a batch is dropped;
    a plan shorter than one batch is cycled to fill it, so every epoch has at least one step)."""
    if not plan:
        raise ValueError("no cubes planned for this epoch")
    if len(plan) < batch_size:
        plan = [plan[i % len(plan)] for i in range(batch_size)]
    n = len(plan) // batch_size
    return [list(plan[i * batch_size:(i + 1) * batch_size]) for i in range(n)]


def load_batch(sources: Sequence[TomogramSource], refs: Sequence[CubeRef], cube_size: int) -> np.ndarray:
    """Cubes of a batch from every map: ``(n_maps, b, n, n, n)`` float32, each map normalised
    with its own statistics, identical coordinates in all maps."""
    n_maps = len(sources[refs[0].source].maps)
    out = np.empty((n_maps, len(refs), cube_size, cube_size, cube_size), dtype=np.float32)
    for j, ref in enumerate(refs):
        src = sources[ref.source]
        centre = np.asarray([ref.centre])
        for m, (vol, (mean, std)) in enumerate(zip(src.maps, src.stats)):
            out[m, j] = extract_cubes(vol, centre, cube_size, mean, std)[0]
    return out
