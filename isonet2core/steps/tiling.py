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
  often as needed, so volumes smaller than the cube work); they are read on the fly, one slab
  of z planes per z-row of tiles, so no padded copy of the volume is ever made.
* **Blending.** Each tile output is weighted by the separable Hann window
  ``w(i) = sin^2(pi (i + 1/2) / cube)`` (positive everywhere, largest at the centre where the
  network had the most context) and the weighted sum is divided by the summed weights. Because
  the tiles form a Cartesian grid, the summed weight is itself separable,
  ``W(z, y, x) = Wz(z) Wy(y) Wx(x)``, so only three 1D arrays are kept. Stitching the tiles of
  an identity network returns the input exactly (to float32 rounding).
* **Memory.** The tiles are visited z-row by z-row (``TileGrid.positions``: z slowest).
  ``iter_tile_batches`` reads, per z-row, one slab of the z planes its tiles cover (at most
  ``cube`` planes ``(k, y, x)``, from an array, a memory map or an
  :class:`isonet2core.io.mrcio.PlaneReader`) and cuts the row's tiles from it, yielding
  ``batch_size`` tiles at a time. ``TileAccumulator`` blends the tile outputs into a rolling
  float32 buffer of the planes the current z-row covers (at most ``cube`` planes); when the
  next z-row begins, the planes that no later tile touches are final: it divides them by the
  summed weights and hands them out in increasing z order as ``(z0, planes (k, y, x))``.
  Peak memory: an input slab, two output buffers of at most ``cube`` planes each and one
  batch of tiles, whatever the number of z planes; nothing of the size of the volume.
* **Bands.** Where those slabs of whole ``(y, x)`` planes would exceed a budget (large planes:
  a 4096x4096 tomogram's slab of 96 planes is 6 GiB), the output rows are cut into y bands
  (:func:`plan_bands`), each predicted as above from the tiles that touch it
  (``rows=(y0, y1)`` of ``iter_tile_batches`` and ``TileAccumulator``): the same tiles, blended
  in the same order, so every voxel is what one band gives; a tile that straddles a band
  boundary is computed for both bands (boundaries sit at tile centres, where only one row of
  tiles straddles).

Scheme ``isonet2-program`` (for models trained by the IsoNet2 program, so that their maps agree
with the program's own): its grid and blending in this frame. Spacing
``s = int(cube / padding_factor + 0.1)``, edge ``e = 5``; ``ceil((n + 2e) / s)`` tiles per axis
starting at ``k s - ((cube - s) // 2 + e)``; each tile output weighted by linear ramps of
``2e`` voxels over its central ``s + 2e`` voxels (0 elsewhere), whose sums are 1 on the whole
volume; mirror padding with the edge voxel repeated (numpy's ``"symmetric"``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, List, Literal, Optional, Sequence, Tuple

import numpy as np

from isonet2core.memory import GIB, format_bytes

Start = Tuple[int, int, int]
Rows = Tuple[int, int]
"""``(y0, y1)``: the output rows ``y0 .. y1 - 1`` of a band."""
BAND_BYTES = 4 * GIB
"""The most a band's slabs and buffers take when the budget allows more (:func:`plan_bands`):
larger bands recompute fewer straddling tiles, and 4 GiB holds whole planes up to about
2900x2900 at cube 96 or 4096x4096 up to cube 64."""
INFERENCE_BYTES = 512 * 1024 * 1024
"""What predict holds besides the bands and the process it starts from (one batch of tiles
through the network with its activations, the input filter, the normalisation's reads): kept
out of the budget before the bands are planned. Measured on the CPU (unet-small, cube 48,
batch 2, 48x2048x2048 with ``--memory_gb 1.5``): the peak exceeded the resident set at
planning plus the planned bands by 0.4 GiB."""
TilingScheme = Literal["hann", "isonet2-program"]
PROGRAM_EDGE = 5
"""Edge ``e`` of the ``isonet2-program`` scheme (blending ramps are ``2 e`` voxels wide)."""


def tile_spacing(cube: int, padding_factor: float) -> int:
    """Distance between tile starts of the ``hann`` scheme.

    Parameters
    ----------
    cube : int
        Tile edge (voxels).
    padding_factor : float
        Tiles per cube edge along an axis (IsoNet2's 1.5: neighbours overlap by a third).

    Returns
    -------
    int
        ``round(cube / padding_factor)``, clamped to ``[1, cube]`` voxels.
    """
    if cube < 1:
        raise ValueError(f"cube size must be positive, got {cube}")
    if not padding_factor >= 1.0:
        raise ValueError(f"padding_factor must be at least 1, got {padding_factor}")
    return int(min(cube, max(1, round(cube / padding_factor))))


def axis_starts(n: int, cube: int, spacing: int) -> List[int]:
    """Tile starts along one axis (``hann`` scheme, the module docstring's rule).

    Parameters
    ----------
    n : int
        Axis length (voxels).
    cube : int
        Tile edge (voxels).
    spacing : int
        Largest distance between starts (:func:`tile_spacing`).

    Returns
    -------
    list of int
        Increasing starts in virtual coordinates: they may be negative or run past ``n`` (the
        region outside ``[0, n)`` is mirror-reflected data).
    """
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
    """Hann blending window ``sin^2(pi (i + 1/2) / cube)``.

    Parameters
    ----------
    cube : int
        Tile edge (voxels).

    Returns
    -------
    numpy.ndarray
        float64 ``(cube,)``, positive, largest at the centre.
    """
    return np.sin(np.pi * (np.arange(cube) + 0.5) / cube) ** 2


def program_window_1d(cube: int, spacing: int) -> np.ndarray:
    """The ``isonet2-program`` blending window.

    Over the ``L = spacing + 2e`` voxels from ``a = (cube - spacing) // 2 - e``:
    ``min(t, 2e) min(L - t, 2e) / (2e)^2`` at ``t = i - a``; 0 outside (``e = PROGRAM_EDGE``).

    Parameters
    ----------
    cube : int
        Tile edge (voxels).
    spacing : int
        The scheme's spacing (:func:`program_spacing`).

    Returns
    -------
    numpy.ndarray
        float64 ``(cube,)`` in [0, 1].
    """
    e, p = PROGRAM_EDGE, 2 * PROGRAM_EDGE
    a, length = (cube - spacing) // 2 - e, spacing + 2 * e
    if not _program_fits(cube, spacing):
        raise ValueError(f"the IsoNet2 program's tiling needs spacing > {p} and cube - spacing >= {2 * e}; "
                         f"got cube {cube}, spacing {spacing}")
    t = np.arange(cube) - a
    w = np.minimum(t, p) * np.minimum(length - t, p) / float(p * p)
    return np.where((t >= 0) & (t < length), w, 0.0)


def _program_fits(cube: int, spacing: int) -> bool:
    return spacing > 2 * PROGRAM_EDGE and (cube - spacing) // 2 >= PROGRAM_EDGE


def program_spacing(cube: int, padding_factor: float) -> int:
    """The ``isonet2-program`` scheme's spacing.

    Parameters
    ----------
    cube : int
        Tile edge (voxels).
    padding_factor : float
        As the program's ``--padding_factor``.

    Returns
    -------
    int
        ``int(cube / padding_factor + 0.1)`` voxels.
    """
    return int(cube / padding_factor + 0.1)


def program_scheme_fits(cube: int, padding_factor: float) -> bool:
    """Whether the ``isonet2-program`` scheme can tile with these settings (the program itself
    fails otherwise, e.g. cube 16 or padding_factor 1).

    Parameters
    ----------
    cube : int
        Tile edge (voxels).
    padding_factor : float
        As the program's ``--padding_factor``.

    Returns
    -------
    bool
        ``spacing > 2 e`` and ``(cube - spacing) // 2 >= e`` (``e = PROGRAM_EDGE``) with the
        scheme's spacing.
    """
    return _program_fits(cube, program_spacing(cube, padding_factor))


def program_axis_starts(n: int, cube: int, spacing: int) -> List[int]:
    """Tile starts of the ``isonet2-program`` scheme along one axis.

    Parameters
    ----------
    n : int
        Axis length (voxels).
    cube : int
        Tile edge (voxels).
    spacing : int
        :func:`program_spacing`.

    Returns
    -------
    list of int
        ``k s - ((cube - s) // 2 + e)`` for ``k < ceil((n + 2e) / s)`` (virtual coordinates).
    """
    if n < 1:
        raise ValueError(f"cannot tile an axis of length {n}")
    e = PROGRAM_EDGE
    count = -(-(n + 2 * e) // spacing)
    return [k * spacing - ((cube - spacing) // 2 + e) for k in range(count)]


@dataclass(frozen=True)
class TileGrid:
    """The tiles covering a volume of ``shape`` ``(z, y, x)`` with cubes of edge ``cube``."""
    shape: Tuple[int, int, int]
    cube: int
    starts: Tuple[Tuple[int, ...], Tuple[int, ...], Tuple[int, ...]]  # per axis z, y, x
    scheme: TilingScheme = "hann"
    spacing: int = 0                  # the isonet2-program scheme's spacing (its window needs it)

    @classmethod
    def for_volume(cls, shape: Sequence[int], cube: int, padding_factor: float,
                   scheme: TilingScheme = "hann") -> TileGrid:
        """The tiles of cubes of edge ``cube`` covering a volume.

        Parameters
        ----------
        shape : sequence of int
            ``(z, y, x)`` of the volume, every axis at least 1.
        cube : int
            Tile edge (voxels).
        padding_factor : float
            Spacing ``cube / padding_factor`` (rounded by the scheme).
        scheme : {"hann", "isonet2-program"}
            Grid and blending (module docstring).

        Returns
        -------
        TileGrid
            Its per-axis starts.

        Raises
        ------
        ValueError
            An empty shape.
        """
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"expected a non-empty (z, y, x) shape, got {tuple(shape)}")
        nz, ny, nx = (int(s) for s in shape)
        if scheme == "hann":
            spacing = tile_spacing(cube, padding_factor)
            starts = (tuple(axis_starts(nz, cube, spacing)), tuple(axis_starts(ny, cube, spacing)),
                      tuple(axis_starts(nx, cube, spacing)))
            return cls((nz, ny, nx), int(cube), starts)
        if scheme == "isonet2-program":
            spacing = program_spacing(cube, padding_factor)
            program_window_1d(cube, spacing)   # checks the sizes
            starts = (tuple(program_axis_starts(nz, cube, spacing)), tuple(program_axis_starts(ny, cube, spacing)),
                      tuple(program_axis_starts(nx, cube, spacing)))
            return cls((nz, ny, nx), int(cube), starts, scheme, spacing)
        raise ValueError(f"tiling scheme must be 'hann' or 'isonet2-program', got {scheme!r}")

    def window(self) -> np.ndarray:
        """The 1D blending window of the scheme.

        Returns
        -------
        numpy.ndarray
            float64 ``(cube,)``.
        """
        if self.scheme == "isonet2-program":
            return program_window_1d(self.cube, self.spacing)
        return window_1d(self.cube)

    def mirror(self, index: np.ndarray, n: int) -> np.ndarray:
        """Virtual indices mapped into ``[0, n)``: numpy's ``reflect`` (hann) or ``symmetric``
        (isonet2-program) padding.

        Parameters
        ----------
        index : numpy.ndarray
            Integer virtual indices along one axis (any, also negative or ``>= n``).
        n : int
            The axis length.

        Returns
        -------
        numpy.ndarray
            Indices in ``[0, n)``, shape of ``index``.
        """
        if self.scheme == "isonet2-program":
            r = np.mod(index, 2 * n)
            return np.where(r < n, r, 2 * n - 1 - r)
        return _reflect(index, n)

    def band_y_starts(self, rows: Optional[Rows] = None) -> Tuple[int, ...]:
        """The y starts of the tiles that touch the output rows ``rows``.

        Parameters
        ----------
        rows : tuple of int, optional
            ``(y0, y1)`` with ``0 <= y0 < y1 <= y``; None: every row.

        Returns
        -------
        tuple of int
            Those of ``starts[1]`` with ``s < y1`` and ``s + cube > y0``, in order.

        Raises
        ------
        ValueError
            Rows outside the volume or empty.
        """
        if rows is None:
            return self.starts[1]
        y0, y1 = rows
        if not 0 <= y0 < y1 <= self.shape[1]:
            raise ValueError(f"band rows {rows} are not a non-empty range within the volume's "
                             f"{self.shape[1]} rows")
        return tuple(s for s in self.starts[1] if s < y1 and s + self.cube > y0)

    @property
    def n_tiles(self) -> int:
        """The number of tiles.

        Returns
        -------
        int
            The product of the per-axis start counts.
        """
        return len(self.starts[0]) * len(self.starts[1]) * len(self.starts[2])

    def positions(self) -> Iterator[Start]:
        """Tile starts, z slowest (so consecutive tiles read nearby slices).

        Yields
        ------
        tuple of int
            ``(z0, y0, x0)`` (virtual coordinates).
        """
        for z0 in self.starts[0]:
            for y0 in self.starts[1]:
                for x0 in self.starts[2]:
                    yield (z0, y0, x0)

    def weight_sums(self) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-axis summed window weights: the blending denominator is their outer product.

        Returns
        -------
        tuple of numpy.ndarray
            float64 ``(z,)``, ``(y,)``, ``(x,)``.
        """
        w = self.window()
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


def iter_tile_batches(volume, grid: TileGrid, batch_size: int,
                      rows: Optional[Rows] = None) -> Iterator[Tuple[np.ndarray, List[Start]]]:
    """The tiles of ``grid`` cut from a volume, in batches, in the order of ``grid.positions()``
    (with ``rows``: only the tiles that touch those output rows, in the same order).

    The volume is read once per z-row of tiles, one slab of the reflected z planes the row needs
    (at most ``cube`` planes; with ``rows``, only the y rows its tiles cover); the tiles,
    mirror-reflected in y and x where they pass the faces, are cut from it in memory. A batch
    may hold the end of one z-row and the start of the next.

    Parameters
    ----------
    volume : numpy.ndarray or memory map or isonet2core.io.mrcio.PlaneReader
        ``(z, y, x)``; anything whose ``volume[z0:z1]`` gives those z planes (and, for a band
        of fewer rows, ``volume[z0:z1, y0:y1]`` those rows of them).
    grid : TileGrid
        The tiles (its shape is the volume's).
    batch_size : int
        At most this many tiles per batch.
    rows : tuple of int, optional
        ``(y0, y1)``: a band of output rows (:meth:`TileGrid.band_y_starts`); None: all.

    Yields
    ------
    tuple
        ``(tiles, starts)``: float32 ``(b, cube, cube, cube)``, ``b <= batch_size``, and their
        ``(z0, y0, x0)``.
    """
    if tuple(volume.shape) != grid.shape:
        raise ValueError(f"volume shape {tuple(volume.shape)} does not match the tile grid {grid.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    c = grid.cube
    nz, ny, nx = grid.shape
    y_starts = grid.band_y_starts(rows)
    y_index = [grid.mirror(np.arange(y0, y0 + c), ny) for y0 in y_starts]
    x_index = [grid.mirror(np.arange(x0, x0 + c), nx) for x0 in grid.starts[2]]
    y_lo = min(int(iy.min()) for iy in y_index)
    y_hi = max(int(iy.max()) for iy in y_index) + 1
    whole_rows = (y_lo, y_hi) == (0, ny)
    y_index = [iy - y_lo for iy in y_index]
    tiles: List[np.ndarray] = []
    starts: List[Start] = []
    for z0 in grid.starts[0]:
        z_index = grid.mirror(np.arange(z0, z0 + c), nz)
        lo, hi = int(z_index.min()), int(z_index.max()) + 1
        slab = np.asarray(volume[lo:hi] if whole_rows else volume[lo:hi, y_lo:y_hi], dtype=np.float32)
        z_index = z_index - lo
        for y0, iy in zip(y_starts, y_index):
            for x0, ix in zip(grid.starts[2], x_index):
                tiles.append(slab[np.ix_(z_index, iy, ix)])
                starts.append((z0, y0, x0))
                if len(tiles) == batch_size:
                    yield np.stack(tiles), starts
                    tiles, starts = [], []
        del slab
    if tiles:
        yield np.stack(tiles), starts


def band_bytes(grid: TileGrid, rows: int, input_slabs: int = 1) -> int:
    """The bytes a band of ``rows`` output rows holds while it is predicted: ``input_slabs``
    input slabs of ``cube`` planes of its tiles' rows (at most ``rows + 2 cube``; 2 where the
    input is the mean of maps: the mean and one map's read) and two output buffers of ``cube``
    planes of ``rows`` (the rolling one and the one that replaces it), float32.

    Parameters
    ----------
    grid : TileGrid
        The tiles.
    rows : int
        Output rows of the band.
    input_slabs : int
        Input slabs held at once.

    Returns
    -------
    int
        Bytes.
    """
    c, nx = grid.cube, grid.shape[2]
    return 4 * c * nx * (input_slabs * (rows + 2 * c) + 2 * rows)


def plan_bands(grid: TileGrid, work_bytes: Optional[int] = None, *, name: str = "volume",
               budget: Optional[str] = None, input_slabs: int = 1) -> List[Rows]:
    """The y bands a volume is predicted in: one band of every row when its slabs and buffers
    (:func:`band_bytes`) fit ``min(work_bytes, BAND_BYTES)``, else the fewest bands that fit,
    cut at tile centres (``start + cube // 2``: one row of tiles straddles each cut).

    Parameters
    ----------
    grid : TileGrid
        The tiles.
    work_bytes : int, optional
        Bytes the bands may take (:func:`isonet2core.memory.work_budget`); None: unknown
        (only ``BAND_BYTES`` bounds them).
    name : str
        Names the volume in the refusal.
    budget : str, optional
        The budget in words, for the refusal.
    input_slabs : int
        Input slabs held at once (:func:`band_bytes`).

    Returns
    -------
    list of tuple of int
        ``(y0, y1)`` bands covering ``0 .. y`` in order.

    Raises
    ------
    ValueError
        Naming the volume, the budget and the minimum: even the narrowest band (between two
        neighbouring cuts) does not fit ``work_bytes``.
    """
    ny = grid.shape[1]
    target = BAND_BYTES if work_bytes is None else max(0, min(int(work_bytes), BAND_BYTES))
    if band_bytes(grid, ny, input_slabs) <= target:
        return [(0, ny)]
    cuts = sorted({s + grid.cube // 2 for s in grid.starts[1]} & set(range(1, ny)))
    edges = [0, *cuts, ny]
    narrowest = max(b - a for a, b in zip(edges, edges[1:]))
    if work_bytes is not None and band_bytes(grid, narrowest, input_slabs) > work_bytes:
        left = "nothing" if work_bytes <= 0 else format_bytes(work_bytes)
        raise ValueError(f"{name}: predicting its {'x'.join(map(str, grid.shape))} (z, y, x) voxels "
                         f"in bands of {narrowest} rows needs at least "
                         f"{format_bytes(band_bytes(grid, narrowest, input_slabs))}, but the memory budget "
                         f"{budget or 'given'} leaves {left} for it; give a larger memory_gb, a "
                         "smaller cube, or run where more memory is free")
    bands: List[Rows] = []
    y0 = 0
    for i, edge in enumerate(edges[1:], 1):
        # close the band at the last cut that still fits (at least one step)
        if edge == ny or band_bytes(grid, edges[i + 1] - y0, input_slabs) > target:
            bands.append((y0, edge))
            y0 = edge
    return bands


Planes = Tuple[int, np.ndarray]
"""``(z0, planes)``: the z planes ``z0 .. z0 + k - 1`` of a volume, float32 ``(k, y, x)`` (of a
band: ``(k, y1 - y0, x)``, its rows)."""


class TileAccumulator:
    """Blends tile outputs, z-row by z-row, into final float32 z planes of the grid's volume
    (with ``rows=(y0, y1)``: of that band of rows, from the tiles that touch it).

    ``add(outputs, starts)`` for every batch, in the order of ``grid.positions()`` (as
    ``iter_tile_batches`` yields them, with the same ``rows``); it returns the planes that
    became final (those no later tile touches), already divided by the summed weights, as a
    list of ``(z0, planes (k, rows, x))`` in increasing z. ``finish()`` once, after the last
    batch, returns the remaining planes. Together they hand out every z plane once, in order.
    The returned arrays belong to the caller (they may be modified in place).
    """

    def __init__(self, grid: TileGrid, rows: Optional[Rows] = None):
        self.grid = grid
        self._y_starts = grid.band_y_starts(rows)
        self.rows = (0, grid.shape[1]) if rows is None else (int(rows[0]), int(rows[1]))
        y0, y1 = self.rows
        w = grid.window()
        self._window = (w[:, None, None] * w[None, :, None] * w[None, None, :]).astype(np.float32)
        self._wz, wy, wx = grid.weight_sums()
        self._inv_yx = (1.0 / (wy[y0:y1, None] * wx[None, :])).astype(np.float32)
        self._plane = (y1 - y0, grid.shape[2])
        self._row = -1                 # index into grid.starts[0] of the z-row being added
        self._z0 = 0                   # first z plane in the buffer (the next to hand out)
        self._buffer = np.zeros((0,) + self._plane, dtype=np.float32)
        self._added = 0
        self._done = False

    def add(self, outputs: np.ndarray, starts: Sequence[Start]) -> List[Planes]:
        """Add the outputs of a batch of tiles.

        Parameters
        ----------
        outputs : numpy.ndarray
            ``(b, cube, cube, cube)`` or ``(b, 1, cube, cube, cube)``.
        starts : sequence of tuple of int
            Their ``(z0, y0, x0)``, continuing ``grid.positions()``.

        Returns
        -------
        list of Planes
            The planes that became final, divided by the summed weights, increasing z.
        """
        if self._done:
            raise RuntimeError("finish() was already called")
        c = self.grid.cube
        outputs = np.asarray(outputs).reshape(len(starts), c, c, c)
        final: List[Planes] = []
        row_starts = self.grid.starts[0]
        for tile, start in zip(outputs, starts):
            if self._row < 0 or start[0] != row_starts[self._row]:
                final.extend(self._next_row(start[0]))
            src, dst = [], []
            for axis, (s, n) in enumerate(zip(start, self.grid.shape)):
                lo, hi = self.rows if axis == 1 else (0, n)
                a, b = max(s, lo), min(s + c, hi)
                src.append(slice(a - s, b - s))
                offset = self._z0 if axis == 0 else lo
                dst.append(slice(a - offset, b - offset))
            self._buffer[tuple(dst)] += tile[tuple(src)] * self._window[tuple(src)]
            self._added += 1
        return final

    def finish(self) -> List[Planes]:
        """The last final planes, after every tile was added.

        Returns
        -------
        list of Planes
            ``(z0, planes (k, y, x))`` in increasing z.
        """
        if self._done:
            raise RuntimeError("finish() was already called")
        expected = len(self.grid.starts[0]) * len(self._y_starts) * len(self.grid.starts[2])
        if self._added != expected:
            raise RuntimeError(f"{self._added} of the grid's {expected} tiles were added")
        self._done = True
        return self._release(self.grid.shape[0], self.grid.shape[0])

    def _next_row(self, z0: int) -> List[Planes]:
        """The z-row starting at ``z0`` begins: hand out the planes before it, extend the buffer."""
        row_starts = self.grid.starts[0]
        if self._row + 1 >= len(row_starts) or z0 != row_starts[self._row + 1]:
            expected = row_starts[self._row + 1] if self._row + 1 < len(row_starts) else None
            raise ValueError(f"tiles must be added z-row by z-row in grid order: got a tile at "
                             f"z {z0}, expected z {expected}")
        self._row += 1
        nz = self.grid.shape[0]
        return self._release(min(max(z0, 0), nz), min(z0 + self.grid.cube, nz))

    def _release(self, end: int, new_stop: int) -> List[Planes]:
        """Hand out planes ``[z0, end)``; the buffer then covers ``[end, new_stop)``."""
        final, keep = self._buffer[:end - self._z0], self._buffer[end - self._z0:]
        buffer = np.zeros((new_stop - end,) + self._plane, dtype=np.float32)
        buffer[:len(keep)] = keep
        z0, self._z0, self._buffer = self._z0, end, buffer
        for i, plane in enumerate(final):
            plane *= self._inv_yx * np.float32(1.0 / self._wz[z0 + i])
        return [(z0, final)] if len(final) else []
