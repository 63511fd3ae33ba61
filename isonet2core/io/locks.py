"""Locks between commands that share files: ``flock`` on a small lock file.

* A STAR update (:func:`star_lock`, used by :func:`isonet2core.io.star.update_rows`): the lock file
  ``.<STAR name>.lock`` beside the STAR, held while one row is re-read and rewritten; a second
  command waits for it (up to :data:`STAR_WAIT_S` seconds).
* A training run (:func:`run_lock`): ``.isonet2_run.lock`` in its output folder, held for the run's
  life; a second run into the folder is refused at once, naming the first.
* Predicted maps (:func:`output_locks`): ``.<map name>.lock`` beside each map a predict writes, held
  for the command's life (two predicts into one folder work when their maps' names differ).

A lock file holds its owner (pid, host, start time, command line) so that a refusal names the
other run. The kernel releases a ``flock`` when its process dies, so a file left by a killed
process blocks nobody; whoever next takes the lock removes it when done (a holder unlinks the file
before releasing it; a waiter that then gets the lock on the unlinked file tries again on the new
one). Without ``fcntl`` (not Linux/macOS) the locks do nothing.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import logging
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence

from isonet2core.io.output_names import PathLike

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

RUN_LOCK = ".isonet2_run.lock"
STAR_WAIT_S = 120.0
"""How long a STAR update waits for another command's update (which takes milliseconds)."""

_command: Optional[str] = None


class InUseError(ValueError):
    """A file or folder is held by another run (the message names it)."""


def set_command(argv: Sequence[str]) -> None:
    """Record the command line that lock files name (the CLI's entry point calls this).

    Parameters
    ----------
    argv : sequence of str
        The command's arguments, e.g. ``["isonet2", "refine", "t.star"]``.
    """
    global _command
    _command = " ".join(shlex.quote(str(a)) for a in argv)


def _owner_text() -> str:
    command = _command or " ".join(shlex.quote(a) for a in sys.argv)
    return json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command,
                       "started": datetime.datetime.now().isoformat(timespec="seconds")})


def describe_owner(lock_path: PathLike) -> str:
    """Who holds a lock, in words.

    Parameters
    ----------
    lock_path : str or Path
        The lock file.

    Returns
    -------
    str
        ``pid N on host H, started T, `COMMAND``` (``owner unknown`` when unreadable).
    """
    for _ in range(20):               # the owner writes its record right after locking
        try:
            owner = json.loads(Path(lock_path).read_text(encoding="utf-8"))
            return (f"pid {owner['pid']} on host {owner['host']}, started {owner['started']}, "
                    f"`{owner['command']}`")
        except (OSError, ValueError, KeyError, TypeError):
            time.sleep(0.01)
    return "owner unknown"


def _try_lock(path: Path) -> Optional[int]:
    """An open descriptor of ``path`` holding its exclusive flock, or None when another holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)                   # its holder removed it while we waited: lock the new file


@contextlib.contextmanager
def hold(lock_path: PathLike, what: str, *, wait_s: float = 0.0) -> Iterator[None]:
    """Hold the lock of a file or folder for the block.

    Parameters
    ----------
    lock_path : str or Path
        The lock file (created; its folder must exist).
    what : str
        What it protects, for the refusal (e.g. ``output folder out``).
    wait_s : float
        How long to wait for another holder; 0: refuse at once.

    Yields
    ------
    None
        While the lock is held.

    Raises
    ------
    InUseError
        Another process holds the lock (the message names it).
    OSError
        The lock file cannot be created (naming ``what``'s folder).
    """
    if fcntl is None:  # pragma: no cover - no flock on this platform
        yield
        return
    path = Path(lock_path)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fd = _try_lock(path)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot lock {what}: {exc.strerror}", str(path.parent)) from None
        if fd is not None or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    if fd is None:
        waited = f" (waited {wait_s:.0f} s)" if wait_s > 0 else ""
        raise InUseError(f"{what} is in use by another run ({describe_owner(path)}){waited}")
    try:
        with contextlib.suppress(OSError):     # a full disk: the lock holds without its record
            os.ftruncate(fd, 0)
            os.write(fd, _owner_text().encode("utf-8"))
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()              # while still held: a waiter re-checks and locks anew
        os.close(fd)


def star_lock(star_path: PathLike) -> contextlib.AbstractContextManager:
    """The lock of a STAR file's updates (module docstring).

    Parameters
    ----------
    star_path : str or Path
        The STAR file.

    Returns
    -------
    context manager
        Held for the block; waits up to :data:`STAR_WAIT_S` for another command.
    """
    p = Path(star_path)
    return hold(p.parent / f".{p.name}.lock", f"STAR file {p}", wait_s=STAR_WAIT_S)


def run_lock(output_dir: PathLike) -> contextlib.AbstractContextManager:
    """The lock of a training run's output folder (created when missing).

    Parameters
    ----------
    output_dir : str or Path
        The folder.

    Returns
    -------
    context manager
        Held for the block; :class:`InUseError` at once when another run holds it.
    """
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return hold(folder / RUN_LOCK, f"output folder {folder}")


@contextlib.contextmanager
def output_locks(outputs: Sequence[PathLike]) -> Iterator[None]:
    """Hold the locks of files a command writes, for the block (their folders are created).

    Parameters
    ----------
    outputs : sequence of str or Path
        The files.

    Yields
    ------
    None
        While every lock is held.

    Raises
    ------
    InUseError
        Another run writes one of them (naming the file and the run).
    """
    with contextlib.ExitStack() as stack:
        for output in outputs:
            p = Path(output)
            p.parent.mkdir(parents=True, exist_ok=True)
            stack.enter_context(hold(p.parent / f".{p.name}.lock", f"output {p}"))
        yield
