"""What a command may write, checked before any work.

One rule for every writer (deconv, make-mask, predict, refine, denoise, prepare-star):

* an output is never an input of the same command: not a file that any row of the STAR names
  in any column (maps, halves, masks, deconvolved and corrected maps, coordinate files), not a
  model file the command reads, not the STAR itself (:func:`table_inputs`,
  :func:`check_not_inputs`). The one exception is the cell a command is about to replace
  with the same file (a re-run of deconv writes ``t1_deconv.mrc`` again where row ``t1``
  already lists it);
* an output folder exists and accepts a new file (:func:`check_folder_writable`), an existing
  output or STAR to be replaced is not read-only (:func:`check_replaceable`: the user marked it
  so, even for root), and where the sizes are known the outputs fit in the free space
  (:func:`check_free_space`);
* an existing file at a STAR path that is not a STAR file (a map, a model) is never replaced
  (:func:`check_star_target`).

:func:`check_outputs` runs them all. The functions only check (and create missing output
folders); the errors name the user's files, never a temporary.
"""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from isonet2core.io import star
from isonet2core.io.output_names import PathLike

MRC_HEADER_BYTES = 1024
_NOT_PATHS = star.INT_COLUMNS | star.FLOAT_COLUMNS | {star.TOMO_NAME}
_STAR_PROBE_BYTES = 64 * 1024


def _keys(path: Path) -> List[tuple]:
    """What identifies a file: its resolved path, and (device, inode) when it exists."""
    keys: List[tuple] = [("path", str(path.absolute().resolve()))]
    try:
        st = path.stat()
        keys.append(("inode", st.st_dev, st.st_ino))
    except OSError:
        pass
    return keys


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file (the same resolved path, or a link to it).

    Parameters
    ----------
    a, b : str or Path
        The paths.

    Returns
    -------
    bool
        True when they do.
    """
    return bool(set(_keys(Path(a))) & set(_keys(Path(b))))


def table_inputs(table: star.TomogramsTable,
                 replaced: Optional[Mapping[Tuple[int, str], PathLike]] = None) -> List[Path]:
    """Every file a tomograms table names: all rows, every path column (and any other text cell
    that names an existing file).

    Parameters
    ----------
    table : star.TomogramsTable
        The table.
    replaced : mapping, optional
        ``(row, column) -> file`` the command writes into that cell: the cell's current file is
        left out when it is that same file (a re-run replaces its own output).

    Returns
    -------
    list of Path
        Absolute paths, in table order (the same file may appear twice).
    """
    replaced = replaced or {}
    found: List[Path] = []
    for column in table.columns:
        if column in _NOT_PATHS:
            continue
        for row in range(len(table)):
            value = table.value(row, column)
            if value is None or not isinstance(value, str):
                continue
            path = table.path(row, column)
            if path is None or (column not in star.PATH_COLUMNS and not path.is_file()):
                continue
            own = replaced.get((row, column))
            if own is not None and same_file(path, own):
                continue
            found.append(path)
    return found


def check_not_inputs(targets: Iterable[PathLike], inputs: Iterable[PathLike]) -> None:
    """Refuse outputs that are inputs, or two outputs that are one file.

    Parameters
    ----------
    targets : iterable of str or Path
        The files to be written.
    inputs : iterable of str or Path
        The files read (None entries are skipped).

    Raises
    ------
    ValueError
        Naming the output and the input (or the two outputs).
    """
    protected: Dict[tuple, Path] = {}
    for other in inputs:
        if other is not None:
            for key in _keys(Path(other)):
                protected.setdefault(key, Path(other))
    written: Dict[tuple, Path] = {}
    for target in map(Path, targets):
        keys = _keys(target)
        for key in keys:
            if key in protected:
                raise ValueError(f"refusing to write {target}: it is the input {protected[key]}; "
                                 "choose another output folder or name")
        for key in keys:
            if key in written:
                raise ValueError(f"refusing to write {target}: {written[key]} is the same file "
                                 "and is written too; give the tomograms distinct names")
        written.update((key, target) for key in keys)


def _read_only(path: Path) -> bool:
    """No write permission for this user, or no write bit at all (marked read-only)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not os.access(path, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)


def check_folder_writable(folder: PathLike) -> Path:
    """Create a folder (with its parents) and make sure a new file can be created in it.

    A probe file is created there with :func:`tempfile.mkstemp` and removed at once.

    Parameters
    ----------
    folder : str or Path
        The output folder.

    Returns
    -------
    Path
        ``Path(folder)``.

    Raises
    ------
    FileExistsError
        It is a file.
    PermissionError
        It cannot be created, is read-only or refuses a new file.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FileExistsError(f"output folder {folder} is a file, not a folder; choose another")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PermissionError(f"cannot create the output folder {folder}: "
                              f"{exc.strerror or exc}") from None
    if _read_only(folder):
        raise PermissionError(f"output folder {folder} is read-only; make it writable or "
                              "choose another")
    try:
        fd, probe = tempfile.mkstemp(prefix=".isonet2-write-test.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise PermissionError(f"cannot write in the output folder {folder}: "
                              f"{exc.strerror or exc}") from None
    return folder


def check_replaceable(path: PathLike) -> None:
    """A file to be (re)written in place: its folder accepts new files (the atomic write puts a
    temporary beside it) and, when it exists, it is a file that is not read-only.

    Parameters
    ----------
    path : str or Path
        The file (an output or the STAR being updated).

    Raises
    ------
    IsADirectoryError
        It is a folder.
    PermissionError
        It is read-only, or its folder is.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a file")
    if path.exists() and _read_only(path):
        raise PermissionError(f"{path} is read-only; make it writable to let it be updated "
                              "(nothing was written)")
    try:
        check_folder_writable(path.parent)
    except PermissionError as exc:
        raise PermissionError(f"cannot write {path}: {exc}") from None


def mrc_bytes(shape: Sequence[int]) -> int:
    """The size of a float32 MRC file written by :func:`isonet2core.io.mrcio.write_mrc`.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)``.

    Returns
    -------
    int
        Header plus data, in bytes.
    """
    n = 1
    for s in shape:
        n *= int(s)
    return MRC_HEADER_BYTES + 4 * n


def check_free_space(targets: Sequence[PathLike], sizes: Sequence[int]) -> None:
    """The files to be written, one after the other, fit in their file systems' free space.

    Each write holds the new file beside the old one until it replaces it, so the peak need is
    the running sum of ``new - old`` plus the next file.

    Parameters
    ----------
    targets : sequence of str or Path
        The files, in write order; their folders exist.
    sizes : sequence of int
        Their sizes in bytes.

    Raises
    ------
    OSError
        ``ENOSPC``, naming the folder, the bytes needed and the bytes free.
    """
    need: Dict[int, List[int]] = {}
    folders: Dict[int, Path] = {}
    for target, size in zip(map(Path, targets), sizes):
        device = target.parent.stat().st_dev
        folders.setdefault(device, target.parent)
        old = target.stat().st_size if target.is_file() else 0
        total, peak = need.get(device, [0, 0])
        need[device] = [total + int(size) - old, max(peak, total + int(size))]
    for device, (_, peak) in need.items():
        free = shutil.disk_usage(folders[device]).free
        if peak > free:
            raise OSError(28, f"not enough free space in {folders[device]}: the outputs need "
                              f"{peak / 1e6:.1f} MB, {free / 1e6:.1f} MB free; free some space or "
                              "choose another output folder")


def check_star_target(path: PathLike) -> None:
    """A STAR file about to be written: an existing file there must be a STAR file (text with a
    ``data_`` block), never a map, a model or any other file.

    Parameters
    ----------
    path : str or Path
        The STAR path.

    Raises
    ------
    ValueError
        Naming the file that is not a STAR file.
    IsADirectoryError
        It is a folder.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"STAR path {path} is a folder; give a file name")
    if not path.exists():
        return
    with open(path, "rb") as fh:
        head = fh.read(_STAR_PROBE_BYTES)
    text = head.decode("utf-8", errors="replace")
    if b"\0" in head or not any(line.strip().startswith("data_") for line in text.splitlines()):
        raise ValueError(f"refusing to write the STAR file {path}: that file exists and is not a "
                         "STAR file; choose another --star_name")


def check_outputs(targets: Sequence[PathLike], inputs: Iterable[PathLike], *,
                  sizes: Optional[Sequence[int]] = None, star_path: Optional[PathLike] = None) -> None:
    """Everything :mod:`isonet2core.io.output_guard` checks, before a command's first write.

    Parameters
    ----------
    targets : sequence of str or Path
        The files the command writes, in order.
    inputs : iterable of str or Path
        Every file it reads or that must survive (:func:`table_inputs`, model files).
    sizes : sequence of int, optional
        The targets' sizes, when known (free space is checked then).
    star_path : str or Path, optional
        The STAR the command updates: no target may be it, and it must be replaceable.

    Raises
    ------
    ValueError, PermissionError, OSError
        Naming the file or folder (:func:`check_not_inputs`, :func:`check_folder_writable`,
        :func:`check_replaceable`, :func:`check_free_space`).
    """
    paths = [Path(t) for t in targets]
    check_not_inputs(paths, [*inputs, *([star_path] if star_path is not None else [])])
    if star_path is not None:
        check_replaceable(star_path)
    for folder in dict.fromkeys(t.parent for t in paths):
        check_folder_writable(folder)
    for target in paths:
        if target.exists():
            check_replaceable(target)
    if sizes is not None:
        check_free_space(paths, sizes)
