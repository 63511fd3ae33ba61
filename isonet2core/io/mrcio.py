"""MRC volumes on disk: checked headers, float32 reads with the voxel size, atomic writes.

Volumes are numpy arrays ``(z, y, x)`` exactly as ``mrcfile`` lays them out. The voxel size
is in Angstrom (the ``x`` voxel size of the header; a header without a cell reports 0.0).

* :func:`read_header` reads only the 1024-byte header (cheap) and checks it against the file:
  a missing file raises ``FileNotFoundError``; a file that is not an MRC map (bad map ID,
  unknown or unsupported mode, non-positive dimensions) or whose data block is shorter than
  the header announces raises ``ValueError`` naming the file and what was expected. Every
  command calls it on all its inputs before long work.
* :func:`open_planes` returns a :class:`PlaneReader`: ``reader[z0:z1]`` reads those z planes
  ``(z1 - z0, y, x)`` as float32 with one positioned read, so that streaming a volume keeps
  only the planes in use in memory (a memory map would keep every page it touched resident);
  :func:`read_mrc` reads all planes with it. :func:`open_mrc` returns a read-only memory map
  for random access to small regions (figures); :func:`open_mapped` returns a
  :class:`MappedVolume`, whose regions (training cubes) are read as float32 through a memory
  map opened on demand, at most ``MAX_OPEN_MAPS`` of them open in the process at once, the
  pages a read touched given back after it, so that a training on hundreds of maps holds
  neither hundreds of file descriptors nor their pages. Both read every supported mode (int8 or IMOD's uint8, int16, uint16,
  float16, float32; either byte order) in place.
* :func:`check_data` streams the data once (slab by slab) and refuses NaN, infinite or
  constant volumes, naming the file; :func:`check_same_grid` refuses maps of one tomogram
  (even/odd halves) that differ in shape or voxel size. Commands call both on their inputs
  while validating, before long work.
* :func:`stream_mrc` writes a float32 map z plane block by z plane block (the data with plain
  sequential writes after mrcfile's header; the header statistics ``dmin``, ``dmax``,
  ``dmean``, ``rms`` accumulated in float64 block by block), so a volume of any size is
  written without ever being whole in memory; :func:`write_mrc` is it applied to an array.
  Both write atomically (temporary file in the same folder, then ``os.replace``, through
  :mod:`isonet2core.io.atomic`, which first removes temporary files that killed writers of the
  same target left behind), refuse to write over any path listed in ``protect`` (the
  caller's inputs), comparing resolved paths so that symbolic and hard links are caught too,
  and leave no file when fewer planes than announced were written.
"""
from __future__ import annotations

import itertools
import logging
import math
import mmap
import os
import threading
import weakref
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterable, Iterator, Optional, Sequence, Tuple

import mrcfile.dtypes
import mrcfile.mrcinterpreter
import mrcfile.utils
import numpy as np

try:                                            # numpy 2 moved it; numpy 1 has only the old name
    from numpy.lib.array_utils import byte_bounds
except ImportError:                             # pragma: no cover - numpy < 2
    byte_bounds = np.byte_bounds  # noqa: NPY201  (the numpy 1 name, used only there)

from isonet2core.io.atomic import atomic_output
from isonet2core.io.output_names import PathLike

logger = logging.getLogger(__name__)


HEADER_BYTES = 1024
# MRC modes we read: 0 bytes, 1 int16, 2 float32, 6 uint16, 12 float16. Complex modes (3, 4)
# and 4-bit packed data (101) are not tomograms.
SUPPORTED_MODES = (0, 1, 2, 6, 12)
# IMOD marks its files with this stamp (header bytes 152-155); unless bit 0 of its flags
# (bytes 156-159) is set, IMOD's mode-0 data are UNSIGNED bytes.
IMOD_STAMP = 1146047817


@dataclass(frozen=True)
class MRCInfo:
    """What the header of one MRC file says.

    ``shape`` is ``(z, y, x)`` in voxels; ``voxel_size_a`` the x voxel size in Angstrom (0.0
    when the header has no cell); ``dtype`` the stored data type (with its byte order);
    ``data_offset`` the byte offset of the data block (header plus extended header).
    """
    path: Path
    shape: Tuple[int, int, int]
    voxel_size_a: float
    dtype: np.dtype
    data_offset: int = HEADER_BYTES


def read_header(path: PathLike) -> MRCInfo:
    """Read and check the header of an MRC file (the data are not read).

    Parameters
    ----------
    path : str or Path
        The MRC file.

    Returns
    -------
    MRCInfo
        Shape ``(z, y, x)``, stored dtype, voxel size (Angstrom), data offset.

    Raises
    ------
    FileNotFoundError
        ``path`` does not exist or is not a file.
    ValueError
        Naming the file: not an MRC header (map ID, mode, dimensions) or shorter than the
        header says.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"MRC file not found: {p}")
    if not p.is_file():
        raise FileNotFoundError(f"not a file (expected an MRC volume): {p}")
    file_size = p.stat().st_size
    if file_size < HEADER_BYTES:
        raise ValueError(f"{p} is not an MRC file: {file_size} bytes, shorter than the "
                         f"{HEADER_BYTES}-byte MRC header")
    with open(p, "rb") as fh:
        raw = fh.read(HEADER_BYTES)
    header, byte_order = _parse_header(raw)
    map_id = bytes(header.map)
    if map_id != b"MAP ":
        raise ValueError(f"{p} is not an MRC file: map ID {map_id!r}, expected b'MAP '")
    mode = int(header.mode)
    if mode not in SUPPORTED_MODES:
        raise ValueError(f"{p}: unsupported MRC mode {mode}; expected one of "
                         f"{SUPPORTED_MODES} (8/16-bit integers, float16 or float32)")
    nx, ny, nz = int(header.nx), int(header.ny), int(header.nz)
    if nx <= 0 or ny <= 0 or nz <= 0:
        raise ValueError(f"{p}: corrupt MRC header, dimensions (nx, ny, nz) = ({nx}, {ny}, {nz}) "
                         "must all be positive")
    dtype = mrcfile.utils.dtype_from_mode(mode).newbyteorder(byte_order)
    if mode == 0 and _imod_unsigned_bytes(raw, byte_order):
        dtype = np.dtype(np.uint8)
    nsymbt = int(header.nsymbt)
    if nsymbt < 0:
        raise ValueError(f"{p}: corrupt MRC header, negative extended header size {nsymbt}")
    offset = HEADER_BYTES + nsymbt
    expected = offset + nx * ny * nz * dtype.itemsize
    if file_size < expected:
        raise ValueError(f"{p} is truncated: the header announces {nz}x{ny}x{nx} voxels of "
                         f"{dtype.name} ({expected} bytes with the header) but the file has "
                         f"{file_size} bytes")
    voxel_size_a = _voxel_size_from_header(p, header)
    return MRCInfo(p, (nz, ny, nx), voxel_size_a, dtype, offset)


def _parse_header(raw: bytes):
    """``(header record, byte order)``: the header in the byte order of its machine stamp (or, when the
    stamp is unreadable, the byte order giving a known mode, as mrcfile's permissive mode)."""
    orders = ["<", ">"]
    try:
        stamped = mrcfile.utils.byte_order_from_machine_stamp(raw[212:216])
        orders.sort(key=lambda o: o != stamped)
    except ValueError:
        pass
    records = [(np.frombuffer(raw, dtype=mrcfile.dtypes.HEADER_DTYPE.newbyteorder(o))
                .view(np.recarray)[0], o) for o in orders]
    for record, order in records:
        if int(record.mode) in SUPPORTED_MODES:
            return record, order
    return records[0]


def _imod_unsigned_bytes(raw: bytes, byte_order: str) -> bool:
    stamp, flags = np.frombuffer(raw[152:160], dtype=np.dtype(np.int32).newbyteorder(byte_order))  # type: ignore[arg-type]
    return int(stamp) == IMOD_STAMP and not int(flags) & 1


def _voxel_size_from_header(path: Path, header) -> float:
    sizes = []
    for cell, sampling in ((header.cella.x, header.mx), (header.cella.y, header.my),
                           (header.cella.z, header.mz)):
        cell, sampling = float(cell), int(sampling)
        # the header stores float32: keep 6 significant digits (5.4, not 5.4000002)
        size = cell / sampling if sampling > 0 and np.isfinite(cell) and cell > 0 else 0.0
        sizes.append(float(f"{size:.6g}"))
    vx, vy, vz = sizes
    if vx > 0 and any(v > 0 and abs(v - vx) > 1e-3 * vx for v in (vy, vz)):
        logger.warning("%s: anisotropic voxel size (x %.4f, y %.4f, z %.4f A); using x",
                       path, vx, vy, vz)
    return vx


def header_voxel_size_text(path: PathLike) -> str:
    """What the header says of the x voxel size, as it says it (for messages about a header
    whose voxel size is unusable: ``-5 A``, ``0 A``, ``nan A`` or ``no sampling``).

    Parameters
    ----------
    path : str or Path
        An MRC file whose header :func:`read_header` accepts.

    Returns
    -------
    str
        The cell's x length over its x sampling, in Angstrom.
    """
    with open(path, "rb") as fh:
        header = _parse_header(fh.read(HEADER_BYTES))[0]
    sampling = int(header.mx)
    return f"{float(header.cella.x) / sampling:g} A" if sampling > 0 else "no sampling"


def read_mrc(path: PathLike) -> Tuple[np.ndarray, float]:
    """Read a volume; the header is checked first.

    Parameters
    ----------
    path : str or Path
        The MRC file.

    Returns
    -------
    tuple
        ``(data, voxel_size_a)``: float32 ``(z, y, x)`` and Angstrom per voxel (0: unknown).
    """
    info = read_header(path)
    return open_planes(path, info=info)[:], info.voxel_size_a


def open_mrc(path: PathLike, *, info: Optional[MRCInfo] = None) -> np.memmap:
    """A read-only memory map of the data in the stored dtype.

    Convert the parts you need with ``np.asarray(part, dtype=np.float32)``. The pages a map
    touches stay in the process's resident memory while it lives: stream whole volumes with
    :func:`open_planes` instead.

    Parameters
    ----------
    path : str or Path
        The MRC file.
    info : MRCInfo, optional
        Its header, when already read (else read and checked here).

    Returns
    -------
    numpy.memmap
        ``(z, y, x)``.
    """
    info = info or read_header(path)
    return np.memmap(info.path, dtype=info.dtype, mode="r", offset=info.data_offset,
                     shape=info.shape)


MAX_OPEN_MAPS = 64
"""At most this many memory maps of :class:`MappedVolume` objects are open at once (per process)."""

_MADV_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)
# pages are given back in blocks of this size aligned in the file: a page fault maps the pages
# around the touched one too (Linux's fault-around, a whole large page-cache folio: up to 2 MiB)
_RELEASE_ALIGN = max(mmap.PAGESIZE, 2 * 1024 * 1024)


@dataclass(frozen=True)
class _OpenMap:
    """One open memory map of a file: the mapping, its ``(z, y, x)`` data array, and the memory
    address of the file's byte 0."""
    buffer: mmap.mmap
    array: np.ndarray
    address: int


_open_maps: OrderedDict[int, _OpenMap] = OrderedDict()   # least recently used first
_open_maps_lock = threading.RLock()   # re-entrant: a garbage collection inside may forget a volume
_tokens = itertools.count()


def _forget_map(token: int) -> None:
    with _open_maps_lock:
        _open_maps.pop(token, None)


class MappedVolume:
    """An MRC map read region by region through a read-only memory map opened on demand.

    ``volume[index]`` (numpy basic indexing of ``(z, y, x)``: a cube, a row, a voxel, z planes) is
    a new float32 array (a copy, never a view of the map) converted from the stored mode (int8 or
    IMOD's uint8, int16, uint16, float16, float32; either byte order). After each read the pages
    it touched are given back to the page cache (``madvise(MADV_DONTNEED)`` where the system has
    it), so the process's resident memory does not grow with the regions read. The memory maps
    of all MappedVolume objects share one process-wide cache of at most :data:`MAX_OPEN_MAPS`,
    the least recently used closed first (releasing its file descriptor); a volume reopens its
    map at its next read. Reads from several threads are safe.

    ``shape`` is ``(z, y, x)``, ``dtype`` float32 (what reads return), ``info`` the header,
    ``path`` the file.
    """
    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, info: MRCInfo):
        self.info = info
        self.path = info.path
        self.shape = info.shape
        self._token = next(_tokens)
        weakref.finalize(self, _forget_map, self._token)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"MappedVolume({str(self.path)!r}, shape={self.shape}, stored {self.info.dtype.name})"

    def _open(self) -> _OpenMap:
        expected = self.info.data_offset + int(np.prod(self.shape)) * self.info.dtype.itemsize
        with open(self.path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size < expected:
                raise ValueError(f"{self.path}: {size} bytes, but its header announces {self.shape} "
                                 f"(z, y, x) voxels of {self.info.dtype.name} ({expected} bytes with "
                                 "the header); did the file change after its header was read?")
            buffer = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        array: np.ndarray = np.ndarray(self.shape, dtype=self.info.dtype, buffer=buffer, offset=self.info.data_offset)
        return _OpenMap(buffer, array, byte_bounds(array)[0] - self.info.data_offset)

    def _map(self) -> _OpenMap:
        with _open_maps_lock:
            opened = _open_maps.get(self._token)
            if opened is not None:
                _open_maps.move_to_end(self._token)
                return opened
            opened = _open_maps[self._token] = self._open()
            while len(_open_maps) > MAX_OPEN_MAPS:
                _open_maps.popitem(last=False)
            return opened

    def _voxel_as_region(self, index: Any) -> Tuple[Any, bool]:
        """A voxel index ``(z, y, x)`` of integers as the region of that one voxel (a view, whose
        pages can be given back), and whether it was one."""
        if not (isinstance(index, tuple) and len(index) == 3
                and all(isinstance(i, (int, np.integer)) for i in index)):
            return index, False
        region = []
        for i, n in zip(index, self.shape):
            i = int(i)
            if not -n <= i < n:
                raise IndexError(f"{self.path}: voxel {tuple(int(j) for j in index)} (z, y, x) is "
                                 f"outside the map of shape {self.shape}")
            region.append(slice(i % n, i % n + 1))
        return tuple(region), True

    def __getitem__(self, index: Any) -> np.ndarray:
        index, voxel = self._voxel_as_region(index)
        opened = self._map()
        view = opened.array[index]
        out = np.array(view, dtype=np.float32)
        if _MADV_DONTNEED is not None and isinstance(view, np.ndarray) and view.size:
            low, high = byte_bounds(view)
            start, stop = low - opened.address, high - opened.address
            if 0 <= start and stop <= len(opened.buffer):      # a view of the map, not a copy
                # with the pages the kernel mapped around the touched ones
                start -= start % _RELEASE_ALIGN
                stop = min(len(opened.buffer), stop + (-stop) % _RELEASE_ALIGN)
                opened.buffer.madvise(_MADV_DONTNEED, start, stop - start)
        return out.reshape(()) if voxel else out


def open_mapped(path: PathLike, *, info: Optional[MRCInfo] = None) -> MappedVolume:
    """A map whose regions are read as float32 through a memory map opened on demand.

    Parameters
    ----------
    path, info
        As in :func:`open_planes`.

    Returns
    -------
    MappedVolume
        ``volume[index]`` gives float32 regions of ``(z, y, x)``.
    """
    return MappedVolume(info or read_header(path))


class PlaneReader:
    """The z planes of an MRC file, read on demand: ``reader[z0:z1]`` is a new float32 array
    ``(z1 - z0, y, x)`` read with one positioned read of the file, ``reader[z0:z1, y0:y1]``
    the rows ``y0 .. y1 - 1`` of those planes (one positioned read per plane); the file is
    opened for each read, nothing stays in memory between reads.

    ``shape`` is ``(z, y, x)``, ``dtype`` float32 (what reads return), ``info`` the header.
    Only contiguous slices (step 1) are supported; ``ValueError`` names the file when it
    became shorter than its header says.
    """
    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, info: MRCInfo):
        self.info = info
        self.path = info.path
        self.shape = info.shape

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        rows = slice(None)
        if isinstance(index, tuple) and len(index) == 2 and all(isinstance(i, slice) for i in index):
            index, rows = index
        if not isinstance(index, slice):
            raise TypeError(f"{self.path}: read z planes with a slice (reader[z0:z1] or "
                            f"reader[z0:z1, y0:y1]), got {index!r}")
        start, stop, step = index.indices(self.shape[0])
        y0, y1, ystep = rows.indices(self.shape[1])
        if step != 1 or ystep != 1:
            raise ValueError(f"{self.path}: only contiguous planes and rows can be read, got step "
                             f"{step if step != 1 else ystep}")
        n_planes, n_rows, nx = max(0, stop - start), max(0, y1 - y0), self.shape[2]
        if n_planes == 0 or n_rows == 0:
            return np.empty((n_planes, n_rows, nx), dtype=np.float32)
        stored = self.info.dtype
        plane = self.shape[1] * nx
        with open(self.path, "rb") as fh:
            if n_rows == self.shape[1]:
                fh.seek(self.info.data_offset + start * plane * stored.itemsize)
                data = np.fromfile(fh, dtype=stored, count=n_planes * plane)
            else:
                data = np.empty(n_planes * n_rows * nx, dtype=stored)
                for k in range(n_planes):
                    fh.seek(self.info.data_offset + ((start + k) * plane + y0 * nx) * stored.itemsize)
                    got = np.fromfile(fh, dtype=stored, count=n_rows * nx)
                    data[k * n_rows * nx:k * n_rows * nx + got.size] = got
                    if got.size != n_rows * nx:
                        data = data[:k * n_rows * nx + got.size]
                        break
        if data.size != n_planes * n_rows * nx:
            raise ValueError(f"{self.path} is truncated: z planes {start}..{stop - 1} of "
                             f"{self.shape} could not be read")
        return data.reshape((n_planes, n_rows, nx)).astype(np.float32, copy=False)


def open_planes(path: PathLike, *, info: Optional[MRCInfo] = None) -> PlaneReader:
    """A plane-by-plane reader of an MRC file.

    Parameters
    ----------
    path : str or Path
        The MRC file.
    info : MRCInfo, optional
        Its header, when already read (else read and checked here).

    Returns
    -------
    PlaneReader
        ``reader[z0:z1]`` gives float32 planes ``(k, y, x)``.
    """
    return PlaneReader(info or read_header(path))


_CHECK_CHUNK_VOXELS = 4 * 1024 * 1024  # voxels per slab read by check_data (16 MiB as float32)


def check_data(path: PathLike, *, info: Optional[MRCInfo] = None) -> MRCInfo:
    """Read the data of an MRC file once, slab by slab (bounded memory), and check it; used while
    validating a command's inputs, before long work.

    Parameters
    ----------
    path : str or Path
        The MRC file.
    info : MRCInfo, optional
        Its header, when already read.

    Returns
    -------
    MRCInfo
        The header info.

    Raises
    ------
    ValueError
        Naming the file: a voxel is NaN or infinite, or every voxel has one value.
    """
    info = info or read_header(path)
    data = open_planes(info.path, info=info)
    nz, ny, nx = info.shape
    step = max(1, _CHECK_CHUNK_VOXELS // max(1, ny * nx))
    floating = np.issubdtype(info.dtype, np.floating)
    lo, hi = np.inf, -np.inf
    for z0 in range(0, nz, step):
        slab = data[z0:z0 + step]
        if floating:
            finite = np.isfinite(slab)
            if not finite.all():
                bad = int(slab.size - np.count_nonzero(finite))
                first = z0 + int(np.argwhere(~finite)[0][0])
                raise ValueError(f"{info.path} has {bad} NaN or infinite voxel(s) in z slices "
                                 f"{z0}..{min(z0 + step, nz) - 1} (first in slice {first}); "
                                 "expected finite values")
        lo, hi = min(lo, float(slab.min())), max(hi, float(slab.max()))
    if lo == hi:
        raise ValueError(f"{info.path} is constant (every voxel is {lo}); expected a tomogram "
                         "with contrast")
    return info


def check_same_grid(infos: Sequence[MRCInfo]) -> None:
    """Check that maps that must overlay voxel for voxel (the even and odd halves of a tomogram)
    share shape and header voxel size (0 = unknown, not compared).

    Parameters
    ----------
    infos : sequence of MRCInfo
        Their headers.

    Raises
    ------
    ValueError
        Naming the files that differ.
    """
    first = infos[0]
    for other in infos[1:]:
        if other.shape != first.shape:
            raise ValueError(f"half maps differ in shape: {first.path} {first.shape} vs "
                             f"{other.path} {other.shape}")
        a, b = first.voxel_size_a, other.voxel_size_a
        if a > 0 and b > 0 and abs(a - b) > 1e-3 * max(a, b):
            raise ValueError(f"half maps differ in voxel size: {first.path} {a:g} A vs "
                             f"{other.path} {b:g} A")


def check_not_input(target: PathLike, protect: Iterable[PathLike]) -> None:
    """Refuse to write over an input (:func:`isonet2core.io.output_guard.check_not_inputs`, the one rule).

    Parameters
    ----------
    target : str or Path
        The path to be written.
    protect : iterable of str or Path
        The inputs.

    Raises
    ------
    ValueError
        ``target`` is (or links to) one of ``protect``.
    """
    from isonet2core.io import output_guard  # lazily: outputs reads STAR tables

    output_guard.check_not_inputs([target], protect)


def _float32_header(shape: Tuple[int, int, int], voxel_size_a: float) -> np.recarray:
    """mrcfile's header of a new float32 volume of ``shape`` ``(z, y, x)`` (MRC2014, native byte
    order, space group 1, the voxel size in the cell), exactly as ``mrcfile.new`` +
    ``set_data`` + ``voxel_size`` make it, statistics marked unknown. A zero-stride array
    stands for the data: only its dtype and shape are read."""
    mrc = mrcfile.mrcinterpreter.MrcInterpreter()
    mrc._create_default_attributes()   # mrcfile's documented start of a write-only object
    mrc._set_new_data(np.broadcast_to(np.zeros((), dtype=np.float32), shape))
    mrc.update_header_from_data()
    mrc.voxel_size = float(voxel_size_a)
    return mrc.header


class Moments:
    """Count, mean and sum of squared deviations (``count``, ``mean``, ``m2``; ``std``: the
    deviation from the mean) of values added z plane by z plane in float64, merged exactly
    (Chan et al.); a float64 copy of one plane is the only copy.
    """

    def __init__(self):
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, planes: np.ndarray) -> None:
        """Add the values of z planes.

        Parameters
        ----------
        planes : numpy.ndarray
            ``(k, y, x)``, any dtype.
        """
        for plane in planes:
            values = plane.astype(np.float64).ravel()
            n, mean = values.size, float(values.mean())
            values -= mean
            m2 = float(np.dot(values, values))
            delta, total = mean - self.mean, self.count + n
            self.mean += delta * n / total
            self.m2 += m2 + delta * delta * self.count * n / total
            self.count = total

    @property
    def std(self) -> float:
        """The standard deviation (0 before any value)."""
        return math.sqrt(self.m2 / self.count) if self.count else 0.0


class MRCStream:
    """A float32 MRC file being written by :func:`stream_mrc`: :meth:`write` appends z planes,
    :meth:`write_block` writes a block of rows of z planes where it belongs (one or the other).

    ``path`` is the target, ``shape`` ``(z, y, x)`` the announced volume, ``planes_written``
    the z planes appended so far. The statistics (min, max, mean and the rms deviation from
    the mean, as MRC2014 defines them) are accumulated plane by plane in float64, the
    means and squared deviations merged exactly (Chan et al., :class:`Moments`).
    """

    def __init__(self, fh: BinaryIO, path: Path, shape: Tuple[int, int, int], voxel_size_a: float):
        self._fh = fh
        self.path = path
        self.shape = shape
        self.planes_written = 0
        self._block_voxels = 0         # voxels placed by write_block
        self._header = _float32_header(shape, voxel_size_a)
        self._moments = Moments()
        self._min, self._max = np.inf, -np.inf
        self._closed = False
        self._data_offset = self._header.nbytes
        fh.write(self._header.tobytes())

    def _add_statistics(self, block: np.ndarray) -> None:
        for plane in block:
            self._min = np.minimum(self._min, plane.min())   # NaN propagates, as in mrcfile
            self._max = np.maximum(self._max, plane.max())
        self._moments.add(block)

    def write_block(self, z0: int, y0: int, block) -> None:
        """Write rows ``y0 .. y0 + h - 1`` of z planes ``z0 .. z0 + k - 1`` where they belong in
        the file (the caller writes every voxel once; the file stays sparse until then).

        Parameters
        ----------
        z0, y0 : int
            The block's first plane and row.
        block : array_like
            ``(k, h, x)``, converted to float32.

        Raises
        ------
        ValueError
            The block leaves the announced shape, or planes were appended with :meth:`write`.
        """
        if self._closed:
            raise ValueError(f"{self.path}: the stream is closed")
        data = np.ascontiguousarray(block, dtype=np.float32)
        nz, ny, nx = self.shape
        if (data.ndim != 3 or data.shape[2] != nx or z0 < 0 or y0 < 0
                or z0 + data.shape[0] > nz or y0 + data.shape[1] > ny):
            raise ValueError(f"{self.path}: a block of shape {data.shape} at z {z0}, y {y0} does not "
                             f"fit the announced (z, y, x) {self.shape}")
        if self.planes_written:
            raise ValueError(f"{self.path}: planes were appended; blocks cannot be placed as well")
        self._add_statistics(data)
        row_bytes = nx * 4
        for k, plane in enumerate(data):
            self._fh.seek(self._data_offset + ((z0 + k) * ny + y0) * row_bytes)
            self._fh.write(plane.data)
        self._block_voxels += data.size

    def write(self, planes) -> None:
        """Append the next ``k`` z planes.

        Parameters
        ----------
        planes : array_like
            ``(k, y, x)``, converted to float32.

        Raises
        ------
        ValueError
            Their ``(y, x)`` differs from the announced shape or they would exceed its ``z``.
        """
        if self._closed:
            raise ValueError(f"{self.path}: the stream is closed")
        block = np.ascontiguousarray(planes, dtype=np.float32)
        if block.ndim != 3 or block.shape[1:] != self.shape[1:]:
            raise ValueError(f"{self.path}: expected z planes (k, {self.shape[1]}, {self.shape[2]}), "
                             f"got shape {block.shape}")
        if self.planes_written + len(block) > self.shape[0]:
            raise ValueError(f"{self.path}: {self.planes_written + len(block)} z planes would "
                             f"exceed the announced {self.shape[0]}")
        if self._block_voxels:
            raise ValueError(f"{self.path}: blocks were placed; planes cannot be appended as well")
        self._add_statistics(block)
        self._fh.write(block.data)
        self.planes_written += len(block)

    def _close(self) -> None:
        """Check that every announced plane was written and write the header with the statistics."""
        self._closed = True
        nz, ny, nx = self.shape
        if self._block_voxels:
            if self._block_voxels != nz * ny * nx:
                raise ValueError(f"{self.path}: {self._block_voxels} voxels were written in blocks, "
                                 f"{nz * ny * nx} announced; the file was not written")
        elif self.planes_written != nz:
            raise ValueError(f"{self.path}: {self.planes_written} z planes were written, "
                             f"{nz} announced; the file was not written")
        header = self._header
        header.dmin = np.float32(self._min)
        header.dmax = np.float32(self._max)
        header.dmean = np.float32(self._moments.mean)
        header.rms = np.float32(np.sqrt(self._moments.m2 / self._moments.count))
        self._fh.seek(0)
        self._fh.write(header.tobytes())


def _check_output(target: Path, shape: Sequence[int], voxel_size_a: float,
                  protect: Iterable[PathLike]) -> Tuple[int, int, int]:
    check_not_input(target, protect)
    if len(shape) != 3 or any(int(n) != n or n < 1 for n in shape):
        raise ValueError(f"{target}: expected a 3-D volume (z, y, x), got shape {tuple(shape)}")
    if not (np.isfinite(voxel_size_a) and voxel_size_a > 0):
        raise ValueError(f"{target}: voxel size must be positive, got {voxel_size_a} A")
    return int(shape[0]), int(shape[1]), int(shape[2])


@contextmanager
def stream_mrc(path: PathLike, shape: Sequence[int], voxel_size_a: float, *,
               protect: Iterable[PathLike] = ()) -> Iterator[MRCStream]:
    """Write a float32 MRC file z planes in order: ``with stream_mrc(p, shape, v) as out: out.write(planes)``.

    The file is written to a temporary name in the target folder (created if missing) and moved
    into place with ``os.replace`` when the block ends, so readers never see a partial file; an
    exception in the block leaves no file and no temporary.

    Parameters
    ----------
    path : str or Path
        The file written.
    shape : sequence of int
        ``(z, y, x)``, positive.
    voxel_size_a : float
        Angstrom per voxel, positive (header).
    protect : iterable of str or Path
        Inputs the path must not be.

    Yields
    ------
    MRCStream
        Takes the planes.

    Raises
    ------
    ValueError
        Before anything is written: ``path`` is an input, the shape or voxel size is invalid;
        leaving no file: the block wrote fewer planes than ``shape[0]``.
    """
    target = Path(path)
    shape = _check_output(target, tuple(shape), voxel_size_a, protect)
    with atomic_output(target) as tmp:
        with open(tmp, "wb") as fh:
            stream = MRCStream(fh, target, shape, voxel_size_a)
            yield stream
            stream._close()


_WRITE_BLOCK_VOXELS = 4 * 1024 * 1024  # voxels per block converted and written by write_mrc


def write_mrc(path: PathLike, data, voxel_size_a: float, *,
              protect: Iterable[PathLike] = ()) -> Path:
    """Write a volume as a float32 MRC file (:func:`stream_mrc` fed with blocks of z planes,
    converted to float32 block by block; the same errors).

    Parameters
    ----------
    path : str or Path
        The file written.
    data : array_like
        ``(z, y, x)``.
    voxel_size_a : float
        Angstrom per voxel (header).
    protect : iterable of str or Path
        Inputs the path must not be.

    Returns
    -------
    Path
        ``Path(path)``.
    """
    target = Path(path)
    array = np.asarray(data)
    with stream_mrc(target, array.shape, voxel_size_a, protect=protect) as out:
        step = max(1, _WRITE_BLOCK_VOXELS // max(1, array.shape[1] * array.shape[2]))
        for z0 in range(0, array.shape[0], step):
            out.write(array[z0:z0 + step])
    return target


def check_finite_and_nonconstant(array, name: str) -> None:
    """Check a volume's values.

    Parameters
    ----------
    array : array_like
        Any shape.
    name : str
        Names it in the error.

    Raises
    ------
    ValueError
        ``array`` has NaN/Inf values or is constant.
    """
    a = np.asarray(array)
    if a.size == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    finite = np.isfinite(a)
    if not finite.all():
        bad = int(a.size - np.count_nonzero(finite))
        raise ValueError(f"{name} has {bad} NaN or infinite voxels out of {a.size}")
    lo, hi = a.min(), a.max()
    if lo == hi:
        raise ValueError(f"{name} is constant (every voxel is {float(lo)}); "
                         "expected a tomogram with contrast")
