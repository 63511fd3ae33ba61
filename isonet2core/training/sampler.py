"""Training cubes: where to cut them, and cutting them (refine step 1).

* **Sources.** A :class:`TomogramSource` holds one tomogram's maps (the even and odd halves of
  an N2N pair, or one map for single-map refine), each with its own global normalisation
  ``(mean, std)`` from :func:`isonet2core.imaging.normalize.normalization_stats` (central slices, the
  same statistics prediction uses), an optional sampling mask, its microscope (tilt range,
  CTF) and its number of cubes per epoch. :func:`open_source` opens them: every map and mask
  stays on disk (:class:`isonet2core.io.mrcio.MappedVolume`: read through memory maps opened on
  demand, a bounded number open at once) and only the cubes are read, converted to float32
  cube by cube from any stored mode (float32, float16, int8, ...). The statistics are measured
  once with plane reads (:func:`isonet2core.io.mrcio.open_planes`), which leave nothing
  resident. What a source keeps in memory does not grow with its voxels but for the mask's
  allowed centres (:class:`MaskCentres`: one count per strided (z, y) row), so training on
  hundreds of tomograms holds no tomogram in memory.
* **Coordinates.** A cube of edge ``n`` centred at ``c`` covers ``[c - n//2, c - n//2 + n)``
  on each axis, so centres lie at least half a cube from every border; with a mask they are
  also voxels where the mask is non-zero (drawn uniformly among the mask's listed voxels,
  :func:`sample_centres`). Even and odd cubes are cut at identical coordinates.
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
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

from isonet2core.config import Microscope
from isonet2core.imaging import normalize
from isonet2core.io import mrcio
from isonet2core.training.budget import check_fits

log = logging.getLogger(__name__)

_MAX_MASK_CANDIDATES = 20_000_000  # the mask is strided so that at most this many voxels are listed


@dataclass
class TomogramSource:
    """One tomogram prepared for sampling.

    ``maps``: one ``(z, y, x)`` volume (single map) or two (even, odd), same shape: arrays, or
    :class:`isonet2core.io.mrcio.MappedVolume` (what :func:`open_source` makes);
    ``stats``: ``(mean, std)`` per map; ``mask``: optional ``(z, y, x)`` sampling mask (non-zero
    = allowed centre), an array or a MappedVolume; ``n_subtomos``: cubes per epoch; ``name``:
    the tomogram's identifier;
    ``centres``: fixed cube centres ``(n, 3)`` (z, y, x) from a box file (rlnBoxFile), used
    every epoch instead of drawn ones (then ``n_subtomos == n``).
    """
    name: str
    maps: Tuple[Any, ...]
    stats: Tuple[Tuple[float, float], ...]
    microscope: Microscope
    n_subtomos: int
    mask: Optional[Any] = None
    centres: Optional[np.ndarray] = None
    _candidates: Optional[MaskCentres] = field(default=None, repr=False)

    @property
    def shape(self) -> Tuple[int, int, int]:
        """``(z, y, x)`` of the tomogram's maps."""
        z, y, x = (int(s) for s in self.maps[0].shape)
        return z, y, x


def read_box_file(path: Path, shape: Sequence[int], cube_size: int, name: str) -> np.ndarray:
    """Cube centres from a box file (the STAR's rlnBoxFile, as the IsoNet2 program reads it).

    One centre per line, ``x y z`` in voxels in its first three columns (more columns are
    ignored; values are rounded).

    Parameters
    ----------
    path : Path
        The box file.
    shape : sequence of int
        ``(z, y, x)`` of the tomogram.
    cube_size : int
        Edge of the training cubes (voxels).
    name : str
        The tomogram, named in errors.

    Returns
    -------
    numpy.ndarray
        int64 ``(n, 3)`` centres in ``(z, y, x)`` order.

    Raises
    ------
    ValueError
        Naming the file and line: no centre, a line with fewer than three numbers, or a cube at a
        centre that would leave the tomogram.
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
    """Open a tomogram's maps and mask (on disk, read cube by cube) and measure the maps'
    normalisation and the mask's allowed centres.

    Parameters
    ----------
    name : str
        The tomogram (rlnTomoName).
    map_paths : sequence of Path
        Its maps: (even, odd) or one.
    microscope : Microscope
        Tilt range and optics.
    n_subtomos : int
        Cubes per epoch.
    cube_size : int
        Edge of the training cubes (voxels).
    mask_path : Path, optional
        Where cube centres may lie (non-zero voxels).
    box_path : Path, optional
        Fixed cube centres for every epoch (:func:`read_box_file`).

    Returns
    -------
    TomogramSource
        Maps, mask, per-map ``(mean, std)``, centres.

    Raises
    ------
    ValueError
        Naming the file: shapes differ, the tomogram is smaller than the cube, a map is
        NaN/constant in its central slices, the mask allows no centre, or the box file is unusable.
    """
    maps = tuple(mrcio.open_mapped(Path(p)) for p in map_paths)
    shapes = {tuple(m.shape) for m in maps}
    if len(shapes) != 1:
        raise ValueError(f"tomogram {name}: maps {', '.join(map(str, map_paths))} have different "
                         f"shapes {sorted(shapes)}")
    stats = tuple(normalize.normalization_stats(mrcio.open_planes(m.path, info=m.info), str(p))
                  for m, p in zip(maps, map_paths))
    mask = None
    if mask_path is not None:
        mask = mrcio.open_mapped(Path(mask_path))
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
    """The lowest and highest allowed cube centre per axis (cubes stay inside the tomogram).

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the tomogram.
    cube_size : int
        Edge of the cubes (voxels).

    Returns
    -------
    tuple of numpy.ndarray
        ``(low, high)``, each int ``(3,)`` in ``(z, y, x)``, inclusive.
    """
    half = cube_size // 2
    lo = np.full(3, half)
    hi = np.array([int(s) - cube_size + half for s in shape])
    return lo, hi


@dataclass(frozen=True)
class MaskCentres:
    """The allowed cube centres of a mask, kept compactly.

    The region of centres half a cube from the borders (:func:`centre_bounds`) is strided by
    ``stride`` voxels on every axis, from ``low`` ``(z, y, x)``, into ``region_shape``
    ``(z', y', x')`` voxels; the candidates are the voxels of that strided region where the mask
    is non-zero, in C order. Only their number per ``(z', y')`` row is kept, cumulated:
    ``row_ends[r]`` is the number of candidates in rows ``0 .. r`` (``z' * y'`` entries, row
    ``r = z' * region_shape[1] + y'``), so that the ``k``-th candidate is found by locating its
    row and reading that one row of the mask (:meth:`positions`). ``mask_name`` names the mask
    in errors.
    """
    low: Tuple[int, int, int]
    stride: int
    region_shape: Tuple[int, int, int]
    row_ends: np.ndarray
    mask_name: str = "mask"

    @property
    def count(self) -> int:
        """The number of candidates."""
        return int(self.row_ends[-1])

    def positions(self, mask: Any, picks: np.ndarray) -> np.ndarray:
        """Where candidates lie in the strided region.

        Parameters
        ----------
        mask : array_like
            The ``(z, y, x)`` mask the candidates were counted in (array or
            :class:`isonet2core.io.mrcio.MappedVolume`); only the rows of the picks are read,
            each once.
        picks : numpy.ndarray
            int ``(n,)`` candidate numbers, ``0 <= k < count``.

        Returns
        -------
        numpy.ndarray
            int64 ``(n, 3)``: ``(z', y', x')`` in the strided region, as
            ``numpy.unravel_index(numpy.flatnonzero(region > 0)[picks], region_shape)``.

        Raises
        ------
        ValueError
            The mask no longer has the counted candidates in a row (it changed on disk).
        """
        picks = np.asarray(picks, dtype=np.int64)
        rows = np.searchsorted(self.row_ends, picks.astype(self.row_ends.dtype), side="right")
        starts = np.where(rows > 0, self.row_ends[np.maximum(rows - 1, 0)], 0)
        within = picks - starts
        out = np.empty((len(picks), 3), dtype=np.int64)
        out[:, 0], out[:, 1] = np.divmod(rows, self.region_shape[1])
        z0, y0, x0 = self.low
        x_stop = x0 + self.stride * (self.region_shape[2] - 1) + 1
        order = np.argsort(rows, kind="stable")
        for group in np.split(order, np.flatnonzero(np.diff(rows[order])) + 1):
            if not group.size:
                continue
            zr, yr = out[group[0], 0], out[group[0], 1]
            line = np.asarray(mask[z0 + zr * self.stride, y0 + yr * self.stride, x0:x_stop:self.stride])
            listed = np.flatnonzero(line > 0)
            if int(within[group].max()) >= listed.size:
                raise ValueError(f"{self.mask_name}: the mask changed while in use (row z="
                                 f"{z0 + zr * self.stride}, y={y0 + yr * self.stride} lists "
                                 f"{listed.size} allowed centres, fewer than counted)")
            out[group, 2] = listed[within[group]]
        return out


def mask_candidates(src: TomogramSource, cube_size: int, mask_name: str = "mask") -> MaskCentres:
    """Allowed centres from the mask, counted once per strided row (:class:`MaskCentres`).

    The valid region (centres half a cube from the borders) is strided so that at most
    ``_MAX_MASK_CANDIDATES`` voxels are listed; a drawn candidate is then jittered within its
    stride cell (kept where the mask is non-zero). The mask is read one z plane at a time (a
    mask on disk with plane reads, :func:`isonet2core.io.mrcio.open_planes`, which leave nothing
    resident); what is kept is one count per strided ``(z, y)`` row, not a list of voxels.
    Cached on the source.

    Parameters
    ----------
    src : TomogramSource
        With a mask.
    cube_size : int
        Edge of the cubes (voxels).
    mask_name : str
        The mask, named in errors.

    Returns
    -------
    MaskCentres
        The candidates' row counts and the stride.

    Raises
    ------
    ValueError
        Naming the mask: it allows no centre half a cube from the borders.
    """
    if src._candidates is not None:
        return src._candidates
    assert src.mask is not None
    lo, hi = centre_bounds(src.shape, cube_size)
    valid = int(np.prod(hi - lo + 1))
    stride = max(1, int(math.ceil((valid / _MAX_MASK_CANDIDATES) ** (1.0 / 3.0))))
    mask = src.mask
    planes = mrcio.open_planes(mask.path, info=mask.info) if isinstance(mask, mrcio.MappedVolume) else mask
    z_positions = range(int(lo[0]), int(hi[0]) + 1, stride)
    ys, xs = slice(int(lo[1]), int(hi[1]) + 1, stride), slice(int(lo[2]), int(hi[2]) + 1, stride)
    region_shape = (len(z_positions), len(range(ys.start, ys.stop, stride)), len(range(xs.start, xs.stop, stride)))
    counts = np.empty(region_shape[:2], dtype=np.int64)
    for i, z in enumerate(z_positions):
        counts[i] = np.count_nonzero(np.asarray(planes[z:z + 1])[0, ys, xs] > 0, axis=1)
    row_ends = np.cumsum(counts.ravel())
    if row_ends[-1] == 0:
        raise ValueError(f"{mask_name}: the mask of tomogram {src.name} allows no cube centre at least "
                         f"half a cube ({cube_size // 2} voxels) from the borders")
    if row_ends[-1] < 2 ** 31:
        row_ends = row_ends.astype(np.int32)
    src._candidates = MaskCentres((int(lo[0]), int(lo[1]), int(lo[2])), stride, region_shape,
                                  row_ends, mask_name)
    return src._candidates


def sample_centres(src: TomogramSource, n: int, cube_size: int, rng: np.random.Generator) -> np.ndarray:
    """Cube centres, inside the mask when there is one; a source with fixed ``centres`` (a box
    file) gives those.

    With a mask, each centre is drawn uniformly among the mask's listed voxels
    (:func:`mask_candidates`) and, where the mask was strided, jittered within its stride cell
    when the jittered voxel is inside the mask too.

    Parameters
    ----------
    src : TomogramSource
        The tomogram.
    n : int
        How many.
    cube_size : int
        Edge of the cubes (voxels).
    rng : numpy.random.Generator
        Draws them.

    Returns
    -------
    numpy.ndarray
        int64 ``(n, 3)`` in ``(z, y, x)``.
    """
    if src.centres is not None:
        return src.centres.copy()
    lo, hi = centre_bounds(src.shape, cube_size)
    if src.mask is None:
        return rng.integers(lo, hi + 1, size=(n, 3))
    candidates = mask_candidates(src, cube_size)
    stride = candidates.stride
    centres = lo + candidates.positions(src.mask, rng.integers(0, candidates.count, size=n)) * stride
    if stride > 1:
        jittered = np.minimum(centres + rng.integers(0, stride, size=(n, 3)), hi)
        keep = np.asarray([src.mask[tuple(c)] > 0 for c in jittered], dtype=bool)
        centres = np.where(keep[:, None], jittered, centres)
    return centres.astype(np.int64)

def extract_cubes(volume: np.ndarray, centres: np.ndarray, cube_size: int,
                  mean: float, std: float) -> np.ndarray:
    """Normalised cubes cut from a volume.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(z, y, x)``: array, memory map or :class:`isonet2core.io.mrcio.MappedVolume`.
    centres : numpy.ndarray
        int ``(m, 3)`` in ``(z, y, x)``, inside :func:`centre_bounds`.
    cube_size : int
        Edge ``n`` (voxels).
    mean, std : float
        The map's normalisation (:func:`isonet2core.imaging.normalize.normalization_stats`).

    Returns
    -------
    numpy.ndarray
        float32 ``(m, n, n, n)``.
    """
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
    """The random generator of one epoch, ``default_rng([seed, epoch, stream])``.

    Parameters
    ----------
    seed : int
        The run's seed.
    epoch : int
        1-based epoch.
    stream : int
        Separates independent uses: 0 cubes, 1 augmentations, 2 + rank noise.

    Returns
    -------
    numpy.random.Generator
        A fresh generator.
    """
    return np.random.default_rng([int(seed), int(epoch), int(stream)])


def epoch_plan(sources: Sequence[TomogramSource], cube_size: int, seed: int, epoch: int) -> List[CubeRef]:
    """All cubes of one epoch: ``n_subtomos`` per source, shuffled across sources.

    Parameters
    ----------
    sources : sequence of TomogramSource
        The tomograms.
    cube_size : int
        Edge of the cubes (voxels).
    seed : int
        The run's seed.
    epoch : int
        1-based epoch.

    Returns
    -------
    list of CubeRef
        The epoch's cubes in training order.
    """
    rng = epoch_rng(seed, epoch, 0)
    refs: List[CubeRef] = []
    for i, src in enumerate(sources):
        for c in sample_centres(src, src.n_subtomos, cube_size, rng):
            refs.append(CubeRef(i, (int(c[0]), int(c[1]), int(c[2]))))
    order = rng.permutation(len(refs))
    return [refs[j] for j in order]


def batches(plan: Sequence[CubeRef], batch_size: int) -> List[List[CubeRef]]:
    """Split a plan into full batches.

    The remainder that does not fill a batch is dropped; a plan shorter than one batch is
    cycled to fill it, so every epoch has at least one step.

    Parameters
    ----------
    plan : sequence of CubeRef
        :func:`epoch_plan`.
    batch_size : int
        Cubes per batch.

    Returns
    -------
    list of list of CubeRef
        The batches.
    """
    if not plan:
        raise ValueError("no cubes planned for this epoch")
    if len(plan) < batch_size:
        plan = [plan[i % len(plan)] for i in range(batch_size)]
    n = len(plan) // batch_size
    return [list(plan[i * batch_size:(i + 1) * batch_size]) for i in range(n)]


def load_batch(sources: Sequence[TomogramSource], refs: Sequence[CubeRef], cube_size: int) -> np.ndarray:
    """Cubes of a batch from every map, each map normalised with its own statistics, identical
    coordinates in all maps.

    Parameters
    ----------
    sources : sequence of TomogramSource
        The tomograms the references point into.
    refs : sequence of CubeRef
        The batch's cubes.
    cube_size : int
        Edge ``n`` (voxels).

    Returns
    -------
    numpy.ndarray
        float32 ``(n_maps, b, n, n, n)``.
    """
    n_maps = len(sources[refs[0].source].maps)
    out = np.empty((n_maps, len(refs), cube_size, cube_size, cube_size), dtype=np.float32)
    for j, ref in enumerate(refs):
        src = sources[ref.source]
        centre = np.asarray([ref.centre])
        for m, (vol, (mean, std)) in enumerate(zip(src.maps, src.stats)):
            out[m, j] = extract_cubes(vol, centre, cube_size, mean, std)[0]
    return out
