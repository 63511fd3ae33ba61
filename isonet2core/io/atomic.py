"""Atomic file output: write a temporary file beside the target, then ``os.replace`` it.

Readers never see a partial file, and a failure (full disk, exception, kill) leaves the old
file intact. Temporaries are named ``.<target name>.<pid>.<random>.tmp``: a writer killed with
SIGKILL (scheduler, out-of-memory killer) cannot remove its own, so the next write of the same
target removes those of processes that no longer run. The temporary is flushed to the disk
before it replaces the target, and the folder (the rename) after, so that a power cut leaves the
old file or the new one. An ``OSError`` that names no file (a full disk) or the temporary (a
folder the user cannot write) is re-raised naming the target. SIGTERM (``isonet2`` turns it into
an interruption, :mod:`isonet2core.cli.main`) removes the temporary like Ctrl-C does. Every
writer of the package (maps, STAR files, model files, figures, pages, JSON) goes through
:func:`atomic_output`.
"""
from __future__ import annotations

import errno
import logging
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, List, Optional

from isonet2core.io.output_names import PathLike

logger = logging.getLogger(__name__)



def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:          # e.g. PermissionError: the process exists (another user's)
        return True
    return True


def remove_stale_temporaries(target: PathLike) -> List[Path]:
    """Remove the temporaries that killed writers of a file left beside it (those of running
    processes are kept).

    Parameters
    ----------
    target : str or Path
        The file.

    Returns
    -------
    list of Path
        The removed paths.
    """
    target = Path(target)
    prefix = f".{target.name}."
    removed: List[Path] = []
    try:
        candidates = list(target.parent.iterdir())
    except OSError:
        return removed
    for path in candidates:
        name = path.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix):].split(".", 1)[0]
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        try:
            path.unlink()
            removed.append(path)
            logger.info("removed %s, left by an interrupted write", path)
        except OSError:
            pass
    return removed


def _base(name: object) -> Optional[str]:
    """The last part of an ``OSError``'s file name (None when it names none)."""
    return os.path.basename(os.fsdecode(name)) if isinstance(name, (str, bytes, os.PathLike)) else None


def _fsync(path: Path) -> None:
    """Flush a file's data, or a folder's entries (the rename), to the disk. File systems that
    cannot sync a folder (EINVAL, ENOTSUP) or that refuse to open one (Windows) are skipped."""
    flags = (os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except (PermissionError, IsADirectoryError):
        if path.is_dir():
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def temporary_path(target: PathLike) -> Path:
    """A new temporary name beside a file, ``.<target name>.<pid>.<random>.tmp``: the name that
    :func:`remove_stale_temporaries` removes once its process no longer runs (also used for
    the scratch files of :mod:`isonet2core.io.scratch`).

    Parameters
    ----------
    target : str or Path
        The file that the temporary is to replace.

    Returns
    -------
    Path
        In the target's folder; not created.
    """
    target = Path(target)
    return target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


@contextmanager
def atomic_output(target: PathLike) -> Iterator[Path]:
    """A temporary path beside a file (its folder is created): when the block ends normally the
    temporary replaces ``target``, otherwise it is removed and ``target`` is left as it was.

    Parameters
    ----------
    target : str or Path
        The file.

    Yields
    ------
    Path
        The temporary to write.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = temporary_path(target)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, target)
        _fsync(target.parent)
    except OSError as exc:   # e.g. a full disk: name the file we could not write
        tmp.unlink(missing_ok=True)
        if exc.filename is None or tmp.name in (_base(exc.filename), _base(exc.filename2)):
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(target: PathLike, text: str) -> Path:
    """Write text (UTF-8) atomically.

    Parameters
    ----------
    target : str or Path
        The file.
    text : str
        Its content.

    Returns
    -------
    Path
        ``Path(target)``.
    """
    with atomic_output(target) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return Path(target)
