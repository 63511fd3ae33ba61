"""Helpers shared by the benchmarks: machine description, section timers, peak memory and
running one measurement in a fresh worker process.

Peak memory:

* CPU: the process's resident-set high-water mark ``VmHWM`` from ``/proc/self/status``, reset
  to the current RSS by writing ``5`` to ``/proc/self/clear_refs`` (Linux >= 4.0) before the
  measured phase. Each measurement runs in a fresh process (:func:`bench.worker.run_worker`), so memory
  freed by an earlier measurement but kept by the allocator cannot hide a later peak.
  Reported as the peak minus the RSS before the measured objects were made.
* CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

Timers call ``torch.cuda.synchronize`` on CUDA before reading the clock, so that a section
is charged with the GPU work it launched.
"""
from __future__ import annotations

import contextlib
import datetime
import logging
import os
import platform
import re
import time
from pathlib import Path
from typing import Dict, Iterator, Optional

import torch

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- machine
def _proc_status_kib(field: str) -> Optional[int]:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field}:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) if m else None


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total_gib() -> Optional[float]:
    try:
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        return round(int(m.group(1)) / 2 ** 20, 1) if m else None
    except OSError:
        return None


def load_average() -> Optional[list]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info(device: torch.device) -> dict:
    """Where and when the benchmark ran (recorded in every result file)."""
    import numpy

    info = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": memory_total_gib(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "platform": platform.platform(),
        "load_average_at_start": load_average(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2 ** 30, 1)
        info["cuda"] = torch.version.cuda
    return info


# --------------------------------------------------------------------------- timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SectionTimer:
    """Accumulates wall-clock seconds per named section; sections may nest (an outer section
    includes the inner ones). ``steps`` keeps one dict per ``step()`` block."""

    def __init__(self, device: torch.device):
        self.device = device
        self.current: Dict[str, float] = {}
        self.steps: list = []

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        synchronize(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            synchronize(self.device)
            self.current[name] = self.current.get(name, 0.0) + time.perf_counter() - t0

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        """One step; besides its sections records ``total`` (wall) and ``cpu`` (process CPU
        seconds, all threads: ``cpu / (total * threads)`` well below 1 means the machine was
        busy with other work)."""
        self.current = {}
        c0 = time.process_time()
        with self.section("total"):
            yield
        self.current["cpu"] = time.process_time() - c0
        self.steps.append(self.current)


def mean(values) -> float:
    v = list(values)
    return sum(v) / len(v) if v else float("nan")


def median(values) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    mid = len(v) // 2
    return v[mid] if len(v) % 2 else 0.5 * (v[mid - 1] + v[mid])


# --------------------------------------------------------------------------- memory
def rss_bytes() -> Optional[int]:
    kib = _proc_status_kib("VmRSS")
    return None if kib is None else kib * 1024


class PeakMemory:
    """Peak memory of a measured phase: ``reset()`` before it, ``peak_bytes()`` after.

    ``baseline`` (bytes) is subtracted: on the CPU the RSS when the object was made (before the
    measured objects exist), on CUDA 0 (``max_memory_allocated`` counts only tensors).
    ``method`` says what was measured; ``None`` results when the platform offers neither.
    """

    def __init__(self, device: torch.device):
        self.device = device
        if device.type == "cuda":
            self.method = "torch.cuda.max_memory_allocated"
            self.baseline = 0
        else:
            self.method = "VmHWM (reset via /proc/self/clear_refs) minus RSS before the objects"
            self.baseline = rss_bytes()

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")
        except OSError:
            self.method = "VmHWM of the fresh worker process minus RSS before the objects"

    def peak_bytes(self) -> Optional[int]:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        kib = _proc_status_kib("VmHWM")
        if kib is None or self.baseline is None:
            return None
        return kib * 1024 - self.baseline


def mib(n_bytes: Optional[float]) -> Optional[float]:
    return None if n_bytes is None else round(n_bytes / 2 ** 20, 1)
