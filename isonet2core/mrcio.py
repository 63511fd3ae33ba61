"""MRC volumes on disk: checked headers, float32 reads with the voxel size, atomic writes.

Volumes are numpy arrays ``(z, y, x)`` exactly as ``mrcfile`` lays them out. The voxel size
is in Angstrom (the ``x`` voxel size of the header; a header without a cell reports 0.0).

* :func:`read_header` reads only the 1024-byte header (cheap) and checks it against the file:
  a missing file raises ``FileNotFoundError``; a file that is not an MRC map (bad map ID,
  unknown or unsupported mode, non-positive dimensions) or whose data block is shorter than
  the header announces raises ``ValueError`` naming the file and what was expected. Every
  command calls it on all its inputs before long work.
* :func:`read_mrc` returns the data as float32 with the voxel size; :func:`open_mrc` a
  read-only memory map for streaming large volumes.
* :func:`check_data` streams the data once (memory-mapped, slab by slab) and refuses NaN,
  infinite or constant volumes, naming the file; :func:`check_same_grid` refuses maps of one
  tomogram (even/odd halves) that differ in shape or voxel size. Commands call both on their
  inputs while validating, before long work.
* :func:`write_mrc` writes float32 atomically (temporary file in the same folder, then
  ``os.replace``) and refuses to write over any path listed in ``protect`` (the caller's
  inputs), comparing resolved paths so that symbolic and hard links are caught too; it
  first removes temporary files that killed writers of the same target left behind
  (:mod:`isonet2core.atomic`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence, Tuple, Union

import mrcfile
import mrcfile.dtypes
import mrcfile.utils
import numpy as np

from isonet2core.atomic import atomic_output

logger = logging.getLogger(__name__)

PathLike = Union[str, os.PathLike]

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

    Raises ``FileNotFoundError`` when ``path`` does not exist or is not a file, and
    ``ValueError`` naming the file when the header is not an MRC header (map ID, mode,
    dimensions) or the file is shorter than the header says.
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
    stamp, flags = np.frombuffer(raw[152:160], dtype=np.dtype(np.int32).newbyteorder(byte_order))
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


def read_mrc(path: PathLike) -> Tuple[np.ndarray, float]:
    """Read a volume: ``(data (z, y, x) float32, voxel_size_a)``; the header is checked first."""
    info = read_header(path)
    data = np.array(open_mrc(path, info=info), dtype=np.float32)
    return data, info.voxel_size_a


def open_mrc(path: PathLike, *, info: Optional[MRCInfo] = None) -> np.memmap:
    """A read-only memory map of the data ``(z, y, x)`` in the stored dtype.

    Convert the parts you need with ``np.asarray(part, dtype=np.float32)``.
    """
    info = info or read_header(path)
    return np.memmap(info.path, dtype=info.dtype, mode="r", offset=info.data_offset,
                     shape=info.shape)


_CHECK_CHUNK_VOXELS = 16 * 1024 * 1024  # voxels per slab read by check_data (64 MiB as float32)


def check_data(path: PathLike, *, info: Optional[MRCInfo] = None) -> MRCInfo:
    """Read the data of an MRC file once, slab by slab (memory-mapped, bounded memory), and raise
    ``ValueError`` naming the file when a voxel is NaN or infinite or every voxel has one value.

    Returns the header info. Used while validating a command's inputs, before long work.
    """
    info = info or read_header(path)
    data = open_mrc(info.path, info=info)
    nz, ny, nx = info.shape
    step = max(1, _CHECK_CHUNK_VOXELS // max(1, ny * nx))
    floating = np.issubdtype(info.dtype, np.floating)
    lo, hi = np.inf, -np.inf
    for z0 in range(0, nz, step):
        slab = np.asarray(data[z0:z0 + step])
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
    """``ValueError`` naming the files when maps that must overlay voxel for voxel (the even and
    odd halves of a tomogram) differ in shape or in header voxel size (0 = unknown, not compared)."""
    first = infos[0]
    for other in infos[1:]:
        if other.shape != first.shape:
            raise ValueError(f"half maps differ in shape: {first.path} {first.shape} vs "
                             f"{other.path} {other.shape}")
        a, b = first.voxel_size_a, other.voxel_size_a
        if a > 0 and b > 0 and abs(a - b) > 1e-3 * max(a, b):
            raise ValueError(f"half maps differ in voxel size: {first.path} {a:g} A vs "
                             f"{other.path} {b:g} A")


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(target: PathLike, protect: Iterable[PathLike]) -> None:
    """``ValueError`` when ``target`` is (or links to) one of the ``protect`` paths (inputs)."""
    target = Path(target)
    for other in protect:
        if other is not None and _same_file(target, Path(other)):
            raise ValueError(f"refusing to write {target}: it is the input {other}; "
                             "choose another output folder or name")


def write_mrc(path: PathLike, data, voxel_size_a: float, *,
              protect: Iterable[PathLike] = ()) -> Path:
    """Write ``data`` ``(z, y, x)`` as a float32 MRC file with ``voxel_size_a`` in the header.

    The file is written to a temporary name in the target folder (created if missing) and
    moved into place with ``os.replace``, so readers never see a partial file. Raises
    ``ValueError`` when ``path`` is (or links to) one of the ``protect`` paths, when ``data``
    is not 3-D or the voxel size is not positive. Returns ``Path(path)``.
    """
    target = Path(path)
    check_not_input(target, protect)
    array = np.asarray(data, dtype=np.float32)
    if array.ndim != 3:
        raise ValueError(f"{target}: expected a 3-D volume (z, y, x), got shape {array.shape}")
    if not (np.isfinite(voxel_size_a) and voxel_size_a > 0):
        raise ValueError(f"{target}: voxel size must be positive, got {voxel_size_a} A")
    with atomic_output(target) as tmp:
        with mrcfile.new(str(tmp)) as mrc:
            mrc.set_data(np.ascontiguousarray(array))
            mrc.voxel_size = float(voxel_size_a)
    return target


def check_finite_and_nonconstant(array, name: str) -> None:
    """Raise ``ValueError`` naming ``name`` when ``array`` has NaN/Inf values or is constant."""
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
