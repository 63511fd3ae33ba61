"""Choosing the compute device(s) from ``--device auto|cpu|cuda`` and ``--gpuID "0,1"``.

GPU ids name GPUs as ``nvidia-smi`` numbers them. When ``CUDA_VISIBLE_DEVICES`` is set (as
Scipion and job schedulers do) and lists every requested id, the ids are translated to their
positions in that list, which is how PyTorch numbers the visible devices (``CUDA_VISIBLE_DEVICES
=2,3`` with ``--gpuID 3`` gives ``cuda:1``); otherwise they are taken as PyTorch device
indices. ``select_devices`` returns one ``torch.device`` per GPU to use (several for
distributed training) or ``[cpu]``.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Union

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def cpu_threads(requested: int, processes: int = 1) -> int:
    """CPU threads for each of ``processes`` processes asked to use ``requested`` threads in
    all: never more than this machine's cores (oversubscribed threads slow every process
    several times over), at least 1."""
    if requested < 1 or processes < 1:
        raise ValueError(f"threads and processes must be at least 1, got {requested} and "
                         f"{processes}")
    return max(1, min(int(requested), os.cpu_count() or 1) // int(processes))


def parse_gpu_ids(text: Union[None, str, int, Sequence[int]]) -> Optional[List[int]]:
    """``"0,1"`` / ``"[0, 1]"`` / ``0`` / ``(0, 1)`` -> ``[0, 1]``; ``None``/``""``/``"None"`` -> ``None``."""
    if text is None:
        return None
    if isinstance(text, int) and not isinstance(text, bool):
        items = [text]
    elif isinstance(text, (list, tuple)):
        items = list(text)
    else:
        s = str(text).strip().strip("[]()")
        if s.lower() in ("", "none", "auto"):
            return None
        items = [p.strip() for p in s.replace(";", ",").split(",") if p.strip()]
    try:
        ids = [int(i) for i in items]
    except (TypeError, ValueError):
        raise ValueError(f"gpuID must be a comma-separated list of GPU numbers such as 0 or 0,1; got {text!r}")
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"gpuID must list distinct non-negative GPU numbers, got {text!r}")
    return ids


def _visible_ids() -> Optional[List[int]]:
    value = os.environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    try:
        return [int(p) for p in value.split(",") if p.strip()]
    except ValueError:  # UUIDs or MIG names: no translation possible
        return None


def select_devices(device: str = "auto", gpu_ids: Union[None, str, Sequence[int]] = None) -> List[torch.device]:
    """The devices to compute on.

    * ``device="cpu"``: ``[cpu]`` (``ValueError`` if GPU ids are also given);
    * ``device="cuda"``: the requested GPUs, or all visible GPUs; ``ValueError`` without CUDA;
    * ``device="auto"``: like ``cuda`` when CUDA is available, else ``[cpu]``; GPU ids given
      on a machine without CUDA are a ``ValueError`` (never a silent fall back to the CPU).
    """
    if device not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {device!r}")
    ids = parse_gpu_ids(gpu_ids)
    if device == "cpu":
        if ids is not None:
            raise ValueError(f"--device cpu contradicts --gpuID {gpu_ids}; give one or the other")
        return [torch.device("cpu")]
    available = torch.cuda.is_available()
    if not available:
        if device == "cuda" or ids is not None:
            what = f"--gpuID {gpu_ids}" if ids is not None else "--device cuda"
            raise ValueError(f"{what} was requested but no CUDA GPU is available "
                             "(use --device cpu, or check the driver and CUDA_VISIBLE_DEVICES)")
        return [torch.device("cpu")]
    count = torch.cuda.device_count()
    if ids is None:
        return [torch.device(f"cuda:{i}") for i in range(count)]
    visible = _visible_ids()
    if visible is not None and all(i in visible for i in ids):
        positions = [visible.index(i) for i in ids]
    else:
        positions = ids
    bad = [i for i, p in zip(ids, positions) if p >= count]
    if bad:
        raise ValueError(f"GPU {bad} not available: {count} visible GPU(s)"
                         + (f" (CUDA_VISIBLE_DEVICES={os.environ['CUDA_VISIBLE_DEVICES']})"
                            if "CUDA_VISIBLE_DEVICES" in os.environ else ""))
    return [torch.device(f"cuda:{p}") for p in positions]
