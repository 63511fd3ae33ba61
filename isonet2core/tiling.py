"""Overlapping cubic tiles over a ``(z, y, x)`` volume of any shape, and their smooth blending.

Prediction runs the network on cubes of the training size (``cube``) and stitches the outputs
(the overlap-tile strategy of the paper). Choices:

* **Spacing.** Tile starts are ``spacing = round(cube / padding_factor)`` apart (IsoNet2's
  ``padding_factor = 1.5`` gives spacing 64 for cube 96: neighbours overlap by a third of the
  cube) at most: along each axis the fewest tiles with at most that spacing are spread evenly
  from the near to the far edge, so the grid covers the volume whatever its size and the
  overlaps are uniform; the tile set is the Cartesian product of the per-axis starts.
* **Borders.** The grid extends ``margin = (cube - spacing) // 2`` voxels beyond each face of
  the volume (and further, centred, where an axis is shorter than the cube), so that border
  voxels also sit away from tile edges. Voxels outside the volume are filled by mirror
  reflection (numpy's ``"reflect"`` mode: ``... 2 1 | 0 1 2 ... n-1 | n-2 ...``, repeated as
  often as needed, so volumes smaller than the cube work); they are read on the fly, tile by
  tile, so no padded copy of the volume is ever made.
* **Blending.** Each tile output is weighted by the separable Hann window
  ``w(i) = sin^2(pi (i + 1/2) / cube)`` (positive everywhere, largest at the centre where the
  network had the most context) and the weighted sum is divided by the summed weights. Because
  the tiles form a Cartesian grid, the summed weight is itself separable,
  ``W(z, y, x) = Wz(z) Wy(y) Wx(x)``, so only three 1D arrays are kept. Stitching the tiles of
  an identity network returns the input exactly (to float32 rounding).
* **Memory.** ``iter_tile_batches`` yields ``batch_size`` tiles at a time from a (possibly
  memory-mapped) volume; ``TileAccumulator`` adds blended outputs into one float32 output
  array. Peak memory: the output array plus one batch of tiles.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Sequence, Tuple

import numpy as np

Start = Tuple[int, int, int]


def tile_spacing(cube: int, padding_factor: float) -> int:
    """Distance between tile starts: ``round(cube / padding_factor)``, at least 1, at most ``cube``."""
    if cube < 1:
        raise ValueError(f"cube size must be positive, got {cube}")
    if not padding_factor >= 1.0:
        raise ValueError(f"padding_factor must be at least 1, got {padding_factor}")
    return int(min(cube, max(1, round(cube / padding_factor))))


def axis_starts(n: int, cube: int, spacing: int) -> List[int]:
    """Tile starts along an axis of length ``n`` (virtual coordinates: may be negative or run past
    ``n``; the region outside ``[0, n)`` is mirror-reflected data)."""
    if n < 1:
        raise ValueError(f"cannot tile an axis of length {n}")
    margin = (cube - spacing) // 2
    extent = max(n + 2 * margin, cube)
    origin = -((extent - n) // 2)
    count = -(-(extent - cube) // spacing) + 1  # ceil division
    if count == 1:
        return [origin]
    return [origin + int(round(k * (extent - cube) / (count - 1))) for k in range(count)]


def window_1d(cube: int) -> np.ndarray:
    """Hann blending window ``sin^2(pi (i + 1/2) / cube)``, shape ``(cube,)``, float64, > 0."""
    return np.sin(np.pi * (np.arange(cube) + 0.5) / cube) ** 2


@dataclass(frozen=True)
class TileGrid:
    """The tiles covering a volume of ``shape`` ``(z, y, x)`` with cubes of edge ``cube``."""
    shape: Tuple[int, int, int]
    cube: int
    starts: Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]  # per axis z, y, x

    @classmethod
    def for_volume(cls, shape: Sequence[int], cube: int, padding_factor: float) -> "TileGrid":
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"expected a non-empty (z, y, x) shape, got {shape}")
        spacing = tile_spacing(cube, padding_factor)
        return cls(shape, int(cube), tuple(tuple(axis_starts(n, cube, spacing)) for n in shape))

    @property
    def n_tiles(self) -> int:
        return len(self.starts[0]) * len(self.starts[1]) * len(self.starts[2])

    def positions(self) -> Iterator[Start]:
        """Tile starts ``(z0, y0, x0)``, z slowest (so consecutive tiles read nearby slices)."""
        for z0 in self.starts[0]:
            for y0 in self.starts[1]:
                for x0 in self.starts[2]:
                    yield (z0, y0, x0)

    def weight_sums(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-axis summed window weights (``(z,)``, ``(y,)``, ``(x,)``, float64): the blending
        denominator is their outer product."""
        w = window_1d(self.cube)
        sums = []
        for n, starts in zip(self.shape, self.starts):
            acc = np.zeros(n)
            for s in starts:
                a, b = max(s, 0), min(s + self.cube, n)
                acc[a:b] += w[a - s:b - s]
            sums.append(acc)
        return sums[0], sums[1], sums[2]


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Map virtual indices into ``[0, n)`` by mirror reflection without edge repeat."""
    if n == 1:
        return np.zeros_like(index)
    period = 2 * (n - 1)
    r = np.mod(index, period)
    return np.where(r < n, r, period - r)


def extract_tile(volume: np.ndarray, start: Start, cube: int) -> np.ndarray:
    """The ``(cube, cube, cube)`` float32 tile of ``volume`` ``(z, y, x)`` starting at ``start``
    (virtual coordinates; outside the volume the data are mirror-reflected). Reads only the
    needed slab of a memory-mapped volume."""
    idx = [_reflect(np.arange(s, s + cube), n) for s, n in zip(start, volume.shape)]
    lo = [int(i.min()) for i in idx]
    hi = [int(i.max()) + 1 for i in idx]
    slab = np.asarray(volume[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]], dtype=np.float32)
    return slab[np.ix_(idx[0] - lo[0], idx[1] - lo[1], idx[2] - lo[2])]


def iter_tile_batches(volume: np.ndarray, grid: TileGrid,
                      batch_size: int) -> Iterator[Tuple[np.ndarray, List[Start]]]:
    """Yield ``(tiles (b, cube, cube, cube) float32, starts)`` with ``b <= batch_size``."""
    if tuple(volume.shape) != grid.shape:
        raise ValueError(f"volume shape {tuple(volume.shape)} does not match the tile grid {grid.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    tiles: List[np.ndarray] = []
    starts: List[Start] = []
    for start in grid.positions():
        tiles.append(extract_tile(volume, start, grid.cube))
        starts.append(start)
        if len(tiles) == batch_size:
            yield np.stack(tiles), starts
            tiles, starts = [], []
    if tiles:
        yield np.stack(tiles), starts


class TileAccumulator:
    """Blends tile outputs into a float32 ``(z, y, x)`` array of the grid's shape.

    ``add(outputs, starts)`` for every batch, then ``result()`` once (divides by the summed
    weights in place, slice by slice, and returns the array).
    """

    def __init__(self, grid: TileGrid):
        self.grid = grid
        self.output = np.zeros(grid.shape, dtype=np.float32)
        w = window_1d(grid.cube)
        self._window = (w[:, None, None] * w[None, :, None] * w[None, None, :]).astype(np.float32)
        self._done = False

    def add(self, outputs: np.ndarray, starts: Sequence[Start]) -> None:
        """Add ``outputs`` ``(b, cube, cube, cube)`` (or ``(b, 1, cube, cube, cube)``) of the tiles at ``starts``."""
        if self._done:
            raise RuntimeError("result() was already taken")
        c = self.grid.cube
        outputs = np.asarray(outputs).reshape(len(starts), c, c, c)
        for tile, start in zip(outputs, starts):
            src, dst = [], []
            for s, n in zip(start, self.grid.shape):
                a, b = max(s, 0), min(s + c, n)
                src.append(slice(a - s, b - s))
                dst.append(slice(a, b))
            self.output[tuple(dst)] += tile[tuple(src)] * self._window[tuple(src)]

    def result(self) -> np.ndarray:
        """The blended volume (float32, the grid's shape)."""
        if not self._done:
            wz, wy, wx = self.grid.weight_sums()
            inv_yx = (1.0 / (wy[:, None] * wx[None, :])).astype(np.float32)
            for z in range(self.grid.shape[0]):
                self.output[z] *= inv_yx * np.float32(1.0 / wz[z])
            self._done = True
        return self.output
