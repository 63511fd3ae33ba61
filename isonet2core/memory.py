"""Memory: what this machine can still give, and byte counts in words.

Pure standard library (no torch, no numpy): the simulation, the checks before long work and the
Scipion plugin may all ask. :func:`memory_budget` is the one rule of the ``memory_gb`` option
(``deconv``, ``make-mask``): the user's number, else SLURM's allocation, else the available memory.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Mapping, Optional, Tuple


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


GIB = 1024 ** 3
MIB = 1024 ** 2
_UNITS = {"K": 1024, "M": MIB, "G": GIB, "T": 1024 * GIB}
STREAM_BYTES = 512 * MIB
"""The working set of the steps that stream a tomogram in blocks (``deconv``, ``make-mask``) when
their budget allows more: larger blocks are not faster, and a process of about 1.5 GiB in all
fits anywhere."""
SLURM_VARIABLES = ("SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU", "SLURM_CPUS_ON_NODE")
"""The SLURM variables :func:`memory_budget` reads (``--mem``, ``--mem-per-cpu`` and the CPUs
allocated on this node)."""


@dataclass(frozen=True)
class MemoryBudget:
    """The memory a step may hold: ``bytes`` and ``source``, where the number came from
    (``--memory_gb 1.5``, ``SLURM_MEM_PER_NODE=4000``, ``MemAvailable``). ``beyond_process``: the
    bytes are what the machine can still give besides this process (MemAvailable), not a total
    that includes what the process already holds (``memory_gb``, SLURM's allocation)."""
    bytes: int
    source: str
    beyond_process: bool = False

    def __str__(self) -> str:
        return f"{format_bytes(self.bytes)} ({self.source})"


def _slurm_bytes(name: str, text: str) -> int:
    """Bytes of a SLURM memory variable: MiB, or a number with a K/M/G/T suffix (as ``--mem``)."""
    value = text.strip().upper()
    unit = MIB
    if value[-1:] in _UNITS:
        unit, value = _UNITS[value[-1]], value[:-1]
    if not value.isdigit():
        raise ValueError(f"{name}={text!r} is not a memory size (MiB, or a number with a K, M, G "
                         "or T suffix)")
    return int(value) * unit


def slurm_memory_bytes(environ: Optional[Mapping[str, str]] = None) -> Optional[Tuple[int, str]]:
    """The memory SLURM allocated to this job on this node, from its environment.

    ``SLURM_MEM_PER_NODE`` (``--mem``) when set and not 0 (0: the node's whole memory, i.e. no
    limit of the job's own), else ``SLURM_MEM_PER_CPU`` (``--mem-per-cpu``) times
    ``SLURM_CPUS_ON_NODE`` (1 when unset). Values are MiB, as SLURM writes them (a K/M/G/T
    suffix is accepted too).

    Parameters
    ----------
    environ : mapping, optional
        The environment (default ``os.environ``).

    Returns
    -------
    tuple of (int, str) or None
        Bytes and the variables they came from (for messages); None outside SLURM.

    Raises
    ------
    ValueError
        A variable that is set but is not a number, naming it.
    """
    env = os.environ if environ is None else environ
    node = env.get("SLURM_MEM_PER_NODE", "").strip()
    if node:
        per_node = _slurm_bytes("SLURM_MEM_PER_NODE", node)
        if per_node > 0:
            return per_node, f"SLURM_MEM_PER_NODE={node}"
    cpu = env.get("SLURM_MEM_PER_CPU", "").strip()
    if cpu:
        per_cpu = _slurm_bytes("SLURM_MEM_PER_CPU", cpu)
        cpus_text = env.get("SLURM_CPUS_ON_NODE", "").strip() or "1"
        if not cpus_text.isdigit() or int(cpus_text) < 1:
            raise ValueError(f"SLURM_CPUS_ON_NODE={cpus_text!r} is not a number of CPUs")
        if per_cpu > 0:
            return per_cpu * int(cpus_text), (f"SLURM_MEM_PER_CPU={cpu} x "
                                               f"SLURM_CPUS_ON_NODE={cpus_text}")
    return None


def memory_budget(memory_gb: Optional[float] = None, *,
                  environ: Optional[Mapping[str, str]] = None,
                  available: Optional[int] = -1) -> Optional[MemoryBudget]:
    """The memory a step may use: the one rule behind every ``memory_gb`` option.

    ``memory_gb`` when given (GiB, ``2**30`` bytes); otherwise SLURM's allocation
    (:func:`slurm_memory_bytes`) when the job runs under SLURM, capped by the memory this
    machine still has available (:func:`available_memory_bytes`), or that available memory alone.

    Parameters
    ----------
    memory_gb : float, optional
        The user's budget (GiB); None: decided from SLURM and the machine.
    environ : mapping, optional
        The environment (default ``os.environ``).
    available : int or None, optional
        The machine's available bytes (default: :func:`available_memory_bytes`; None: unknown).

    Returns
    -------
    MemoryBudget or None
        None when nothing tells (no ``memory_gb``, no SLURM, a system that does not say).

    Raises
    ------
    ValueError
        ``memory_gb`` not positive and finite; a malformed SLURM variable.
    """
    if memory_gb is not None:
        if not (math.isfinite(memory_gb) and memory_gb > 0):
            raise ValueError(f"memory_gb must be a positive number of GiB, got {memory_gb}")
        return MemoryBudget(int(memory_gb * GIB), f"memory_gb {memory_gb:g}")
    machine = available_memory_bytes() if available == -1 else available
    slurm = slurm_memory_bytes(environ)
    if slurm is not None and (machine is None or slurm[0] <= machine):
        return MemoryBudget(slurm[0], slurm[1])
    if machine is not None:
        return MemoryBudget(machine, "MemAvailable of /proc/meminfo"
                            + (f", less than {slurm[1]}" if slurm is not None else ""), beyond_process=True)
    return None


def resident_memory_bytes() -> Optional[int]:
    """The resident memory of this process now (``/proc/self/statm``).

    Returns
    -------
    int or None
        Bytes; None where the system does not say (not Linux).
    """
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def work_budget(memory_gb: Optional[float] = None) -> Tuple[Optional[int], Optional[str]]:
    """What the arrays of a step may take: :func:`memory_budget`, less the memory this process
    already holds (:func:`resident_memory_bytes`: the interpreter, the libraries) when the budget
    is a total that includes it (``memory_gb``, SLURM's allocation; MemAvailable does not).

    Parameters
    ----------
    memory_gb : float, optional
        The ``memory_gb`` option.

    Returns
    -------
    tuple of (int or None, str or None)
        Bytes, negative when the process already holds more (None: no budget known), and the
        budget in words for messages.
    """
    budget = memory_budget(memory_gb)
    if budget is None:
        return None, None
    if budget.beyond_process:
        return budget.bytes, str(budget)
    held = resident_memory_bytes() or 0
    return budget.bytes - held, f"{budget} less the {format_bytes(held)} this process holds"
