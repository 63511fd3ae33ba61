"""Memory: what this machine can still give, and byte counts in words.

Pure standard library (no torch, no numpy): the simulation, the checks before long work and the
Scipion plugin may all ask.
"""
from __future__ import annotations

from typing import Optional


def available_memory_bytes() -> Optional[int]:
    """The memory this machine can still give without swapping (``MemAvailable`` of
    ``/proc/meminfo``).

    Returns
    -------
    int or None
        Bytes; None where the system does not say (not Linux).
    """
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def format_bytes(n: float) -> str:
    """A byte count in binary units, e.g. ``3.5 GiB``.

    Parameters
    ----------
    n : float
        Bytes.

    Returns
    -------
    str
        The count with one decimal and its unit (B to EiB).
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} EiB"
