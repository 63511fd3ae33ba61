"""Scratch arrays: intermediate arrays of a streamed step kept on disk beside its output.

A :class:`ScratchArray` is a ``(z, ...)`` array of one dtype in a temporary file beside the
output it serves, named as :func:`isonet2core.io.atomic.temporary_path` names temporaries: the
block that opened it (:func:`scratch_array`) removes it, and when a run is killed before that,
the next write of the same output removes it (:func:`isonet2core.io.atomic.remove_stale_temporaries`).
Blocks of z planes (:meth:`ScratchArray.write`, :meth:`ScratchArray.read`) and blocks of the
second axis across every z (:meth:`ScratchArray.read_rows`, :meth:`ScratchArray.write_rows`, the
transposed access of a Fourier transform along z) move with positioned reads and writes, never
through a memory map, whose touched pages would stay in the process's resident memory.
:class:`MemoryArray` offers the same methods (:class:`BlockArray`) over a numpy array, for data
that fit in memory.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence, Tuple

import numpy as np

from isonet2core.io.atomic import temporary_path
from isonet2core.io.output_names import PathLike


class BlockArray(ABC):
    """A ``(z, ...)`` array read and written by blocks of z planes or of rows of the second axis
    across every z (:class:`MemoryArray`, :class:`ScratchArray`).

    ``shape``, ``dtype`` and ``nbytes`` describe it; reads return new arrays, writes convert to
    its dtype.
    """
    shape: Tuple[int, ...]
    dtype: np.dtype
    nbytes: int

    def write(self, z0: int, block: np.ndarray) -> None:
        """Store z planes ``z0 .. z0 + len(block) - 1``.

        Parameters
        ----------
        z0 : int
            First plane.
        block : numpy.ndarray
            ``(k,) + shape[1:]``.
        """
        self._write(z0, block)

    def read(self, z0: int, z1: int) -> np.ndarray:
        """Planes ``z0 .. z1 - 1``.

        Parameters
        ----------
        z0, z1 : int
            Plane range.

        Returns
        -------
        numpy.ndarray
            A new ``(z1 - z0,) + shape[1:]`` array.
        """
        return self._read(z0, z1)

    def read_rows(self, y0: int, y1: int) -> np.ndarray:
        """Rows ``y0 .. y1 - 1`` of the second axis, for every z.

        Parameters
        ----------
        y0, y1 : int
            Row range.

        Returns
        -------
        numpy.ndarray
            A new contiguous ``(shape[0], y1 - y0) + shape[2:]`` array.
        """
        return self._read_rows(y0, y1)

    def write_rows(self, y0: int, block: np.ndarray) -> None:
        """Store rows ``y0 .. y0 + block.shape[1] - 1`` for every z.

        Parameters
        ----------
        y0, block : int, numpy.ndarray
            The first row and the rows, ``(shape[0], k) + shape[2:]``.
        """
        self._write_rows(y0, block)

    @abstractmethod
    def _write(self, z0: int, block: np.ndarray) -> None: ...

    @abstractmethod
    def _read(self, z0: int, z1: int) -> np.ndarray: ...

    @abstractmethod
    def _read_rows(self, y0: int, y1: int) -> np.ndarray: ...

    @abstractmethod
    def _write_rows(self, y0: int, block: np.ndarray) -> None: ...


class MemoryArray(BlockArray):
    """A :class:`BlockArray` in memory (``data``, a numpy array)."""

    def __init__(self, shape: Sequence[int], dtype):
        self.data = np.empty(tuple(int(n) for n in shape), dtype=dtype)
        self.shape = self.data.shape
        self.dtype = self.data.dtype
        self.nbytes = int(self.data.nbytes)

    def _write(self, z0: int, block: np.ndarray) -> None:
        self.data[z0:z0 + len(block)] = block

    def _read(self, z0: int, z1: int) -> np.ndarray:
        return self.data[z0:z1].copy()

    def _read_rows(self, y0: int, y1: int) -> np.ndarray:
        return np.ascontiguousarray(self.data[:, y0:y1])

    def _write_rows(self, y0: int, block: np.ndarray) -> None:
        self.data[:, y0:y0 + block.shape[1]] = block


class ScratchArray(BlockArray):
    """A :class:`BlockArray` in a file, read and written with positioned I/O (the rows: one read
    or write per z plane).

    ``path`` is the file. Reads of anything not written yet return zeros (the file is created
    at its full size, sparse).
    """

    def __init__(self, path: Path, shape: Sequence[int], dtype):
        self.path = Path(path)
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self._plane = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._row = int(np.prod(self.shape[2:], dtype=np.int64)) * self.dtype.itemsize
        self.nbytes = self._plane * self.shape[0]
        self._fd: Optional[int] = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(self._fd, self.nbytes)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close and remove the file (again: nothing)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self.path.unlink(missing_ok=True)

    def _fileno(self) -> int:
        if self._fd is None:
            raise ValueError(f"{self.path}: the scratch array is closed")
        return self._fd

    def _write_at(self, offset: int, data: np.ndarray) -> None:
        view = data.data.cast("B")
        while len(view):
            written = os.pwrite(self._fileno(), view, offset)
            view, offset = view[written:], offset + written

    def _read_at(self, offset: int, out: np.ndarray) -> None:
        view = out.data.cast("B")
        while len(view):
            got = os.preadv(self._fileno(), [view], offset)
            if got <= 0:
                raise OSError(f"{self.path}: scratch file shorter than its {self.nbytes} bytes")
            view, offset = view[got:], offset + got

    def _write(self, z0: int, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype=self.dtype)
        self._check(data.shape[1:], self.shape[1:], "planes")
        self._write_at(z0 * self._plane, data)

    def _read(self, z0: int, z1: int) -> np.ndarray:
        out = np.empty((z1 - z0,) + self.shape[1:], dtype=self.dtype)
        self._read_at(z0 * self._plane, out)
        return out

    def _read_rows(self, y0: int, y1: int) -> np.ndarray:
        out = np.empty((self.shape[0], y1 - y0) + self.shape[2:], dtype=self.dtype)
        for z in range(self.shape[0]):
            self._read_at(z * self._plane + y0 * self._row, out[z])
        return out

    def _write_rows(self, y0: int, block: np.ndarray) -> None:
        data = np.ascontiguousarray(block, dtype=self.dtype)
        self._check(data.shape[:1] + data.shape[2:], self.shape[:1] + self.shape[2:], "rows")
        for z in range(self.shape[0]):
            self._write_at(z * self._plane + y0 * self._row, data[z])

    def _check(self, got, expected, what: str) -> None:
        if tuple(got) != tuple(expected):
            raise ValueError(f"{self.path}: {what} of shape {tuple(got)} do not fit a scratch "
                             f"array of shape {self.shape}")


@contextmanager
def scratch_array(beside: PathLike, shape: Sequence[int], dtype) -> Iterator[ScratchArray]:
    """A :class:`ScratchArray` in a temporary file beside ``beside`` (an output), removed when the
    block ends.

    Parameters
    ----------
    beside : str or Path
        The output the scratch serves; its folder is created if missing.
    shape : sequence of int
        ``(z, ...)``.
    dtype : numpy dtype
        Of the elements.

    Yields
    ------
    ScratchArray
        The array (zeros until written).
    """
    target = Path(beside)
    target.parent.mkdir(parents=True, exist_ok=True)
    array = ScratchArray(temporary_path(target), shape, dtype)
    try:
        yield array
    finally:
        array.close()
