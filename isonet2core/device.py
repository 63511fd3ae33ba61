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


def available_cpus() -> int:
    """The CPUs this process may use.

    The machine's cores, fewer where the process is bound to some of them
    (``sched_getaffinity``) or runs in a SLURM job step that was given ``--cpus-per-task``
    (``SLURM_CPUS_PER_TASK``: SLURM without task affinity binds nothing, yet the job owns only
    those CPUs).

    Returns
    -------
    int
        At least 1.
    """
    count = os.cpu_count() or 1
    if hasattr(os, "sched_getaffinity"):
        count = min(count, len(os.sched_getaffinity(0)) or count)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "").strip()
    if slurm.isdigit() and int(slurm) >= 1:
        count = min(count, int(slurm))
    return count


def cpu_threads(requested: int, processes: int = 1) -> int:
    """CPU threads for each of several processes sharing a thread budget: never more than
    :func:`available_cpus` (oversubscribed threads slow every process several times over).

    Parameters
    ----------
    requested : int
        Threads asked for, in all.
    processes : int
        Processes sharing them.

    Returns
    -------
    int
        Threads per process, at least 1.
    """
    if requested < 1 or processes < 1:
        raise ValueError(f"threads and processes must be at least 1, got {requested} and "
                         f"{processes}")
    return max(1, min(int(requested), available_cpus()) // int(processes))


def describe(devices: Sequence[torch.device]) -> str:
    """One line for the log: the devices, CUDA_VISIBLE_DEVICES as the process found it (a queue
    system's GPUs) and the CPUs available, e.g. ``cpu (CUDA_VISIBLE_DEVICES=0,1; 2 CPUs)``.

    Parameters
    ----------
    devices : sequence of torch.device
        The devices computed on.

    Returns
    -------
    str
        The line.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (f"{', '.join(str(d) for d in devices)} (CUDA_VISIBLE_DEVICES="
            f"{'unset' if visible is None else visible}; {available_cpus()} CPUs)")


def parse_gpu_ids(text: Union[None, str, int, Sequence[int]]) -> Optional[List[int]]:
    """GPU ids as users write them.

    Parameters
    ----------
    text : str or int or sequence of int or None
        ``"0,1"``, ``"[0, 1]"``, ``0``, ``(0, 1)``; ``None``, ``""`` or ``"None"`` for none.

    Returns
    -------
    list of int or None
        ``[0, 1]`` for the examples; None for none.

    Raises
    ------
    ValueError
        Naming the text when it is not a list of non-negative integers.
    """
    if text is None:
        return None
    items: List[Union[str, int]]
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
        raise ValueError(f"gpuID must be a comma-separated list of GPU numbers such as 0 or 0,1; got {text!r}") from None
    if not ids or any(i < 0 for i in ids) or len(set(ids)) != len(ids):
        raise ValueError(f"gpuID must list distinct non-negative GPU numbers, got {text!r}")
    return ids


def gpu_positions(ids: Sequence[int], visible: Optional[Sequence[str]], count: int) -> List[int]:
    """PyTorch device indices of the requested GPU ids, read as the IsoNet2 program reads them
    (its issue #28: SLURM sets CUDA_VISIBLE_DEVICES, which must be honoured).

    * without CUDA_VISIBLE_DEVICES (``visible`` None): indices of the ``count`` GPUs;
    * with it: positions in that list when every id is one (``--gpuID 1`` under ``2,3`` is the
      second listed GPU, physical 3), else the listed ids themselves (``--gpuID 3`` under
      ``2,3``: position 1).

    Parameters
    ----------
    ids : sequence of int
        The requested ids.
    visible : sequence of str, optional
        CUDA_VISIBLE_DEVICES split at commas; None when unset.
    count : int
        GPUs PyTorch sees.

    Returns
    -------
    list of int
        Device indices.

    Raises
    ------
    ValueError
        Naming the list when an id is neither.
    """
    ids = list(ids)
    if visible is None:
        bad = [i for i in ids if i >= count]
        if bad:
            raise ValueError(f"GPU {bad} not available: {count} visible GPU(s)")
        return ids
    visible = [v.strip() for v in visible if v.strip()]
    if all(0 <= i < len(visible) for i in ids):
        return ids
    if all(str(i) in visible for i in ids):
        return [visible.index(str(i)) for i in ids]
    raise ValueError(f"GPU {ids} not available under CUDA_VISIBLE_DEVICES={','.join(visible)}: "
                     f"give positions 0..{len(visible) - 1} in that list or ids listed there")


def select_devices(device: str = "auto", gpu_ids: Union[None, str, Sequence[int]] = None) -> List[torch.device]:
    """The devices to compute on.

    * ``device="cpu"``: ``[cpu]`` (``ValueError`` if GPU ids are also given);
    * ``device="cuda"``: the requested GPUs, or all visible GPUs; ``ValueError`` without CUDA;
    * ``device="auto"``: like ``cuda`` when CUDA is available, else ``[cpu]``; GPU ids given on a
      machine without CUDA are a ``ValueError`` (never a silent fall back to the CPU).

    Parameters
    ----------
    device : str
        ``auto``, ``cpu`` or ``cuda``.
    gpu_ids : str or sequence of int, optional
        :func:`parse_gpu_ids` input.

    Returns
    -------
    list of torch.device
        One CPU device, or the GPUs.
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
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    positions = gpu_positions(ids, None if env is None else env.split(","), count)
    return [torch.device(f"cuda:{p}") for p in positions]


CPU_BF16_MIN_CUBE = 48
"""Smallest training cube that ``amp_dtype`` ``auto`` trains in bfloat16 on a CPU with native
bfloat16. Measured with torch 2.13 (``python -m bench.cpu_bf16_check``, unet-small, 10
forward+backward calls per size): on an AMD EPYC with AVX512-BF16 oneDNN returned garbage weight
gradients (about 1e36) in 4/10 calls at cube 16 and 2/10 at 32, 0/10 at 48; on an Intel Xeon
with AMX 0/10 at every size, but the whole gradient's cosine with float32 was 0.60 at cube 16
(0.99 at 32). At the official cube 48 bfloat16 training and predict kept the quality (lamella,
3 seeds, ``bench/results/lamella_cpu_bf16.md``) and made the step about 3x faster. Inference has
no weight gradients: ``auto`` predicts in bfloat16 at every tile size."""


CPU_BF16_ENV = "ISONET2_CPU_BF16"
"""Environment variable that overrides :func:`cpu_has_native_bf16`: ``on`` or ``off`` (to
reproduce another CPU's defaults, as CI does; unset or ``auto``: what the CPU has)."""


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX); elsewhere bfloat16
    is emulated and slower than float32. :data:`CPU_BF16_ENV` overrides the answer.

    Returns
    -------
    bool
        True with native bfloat16.

    Raises
    ------
    ValueError
        :data:`CPU_BF16_ENV` is set to something other than on, off or auto.
    """
    forced = os.environ.get(CPU_BF16_ENV, "auto").strip().lower()
    if forced not in ("on", "off", "auto"):
        raise ValueError(f"{CPU_BF16_ENV}={forced!r}: expected on, off or auto")
    if forced != "auto":
        return forced == "on"
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision_name(amp: Optional[torch.dtype]) -> str:
    """The network's precision in words, for logs, histories and benchmarks.

    Parameters
    ----------
    amp : torch.dtype or None
        An autocast dtype of :func:`autocast_dtype` (None: float32).

    Returns
    -------
    str
        ``float32``, ``bfloat16`` or ``float16``.
    """
    return "float32" if amp is None else str(amp).replace("torch.", "")


def autocast_dtype(device: torch.device, mixed_precision: bool, amp_dtype: str = "auto", *,
                   training: bool, cube_size: Optional[int] = None) -> Optional[torch.dtype]:
    """The autocast dtype of the network's arithmetic. The one rule:

    * ``mixed_precision`` False: float32 everywhere;
    * CUDA, ``amp_dtype`` ``auto``: training bfloat16 where the GPU supports it (no loss scaling
      needed), else float16; inference float16 (more mantissa, no gradients to overflow);
      ``bfloat16``/``float16``: that dtype (``ValueError`` for bfloat16 on a GPU without it);
    * CPU with native bfloat16 (:func:`cpu_has_native_bf16`): ``bfloat16`` that dtype;
      ``auto`` bfloat16 too, except training at cubes below :data:`CPU_BF16_MIN_CUBE` (float32;
      the trainer falls back to float32 for the rest of a run whose bfloat16 gradients stop
      being finite);
    * other CPUs float32 (emulated bfloat16 is slower, float16 autocast is CUDA-only).

    Parameters
    ----------
    device : torch.device
        Where the network runs.
    mixed_precision : bool
        The user's switch.
    amp_dtype : str
        ``auto``, ``bfloat16`` or ``float16``.
    training : bool
        Training (else inference).
    cube_size : int or None
        The training cube edge (voxels; training only); None counts as below
        :data:`CPU_BF16_MIN_CUBE`.

    Returns
    -------
    torch.dtype or None
        None for float32.
    """
    if amp_dtype not in ("auto", "bfloat16", "float16"):
        raise ValueError(f"amp_dtype must be auto, bfloat16 or float16, got {amp_dtype!r}")
    if not mixed_precision:
        return None
    if device.type == "cuda":
        if amp_dtype == "float16" or (amp_dtype == "auto" and not training):
            return torch.float16
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if amp_dtype == "bfloat16":
            raise ValueError(f"amp_dtype bfloat16: {torch.cuda.get_device_name(device)} does not "
                             "support bfloat16 (use float16 or auto)")
        return torch.float16
    if device.type != "cpu" or amp_dtype == "float16" or not cpu_has_native_bf16():
        return None
    if amp_dtype == "bfloat16":
        return torch.bfloat16
    if training and (cube_size is None or cube_size < CPU_BF16_MIN_CUBE):
        return None
    return torch.bfloat16


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether an exception is a device running out of memory: torch's ``OutOfMemoryError``, or a
    library's failed allocation that torch raises as a plain ``RuntimeError`` (cuFFT, cuDNN).

    Parameters
    ----------
    exc : BaseException
        What a device call raised.

    Returns
    -------
    bool
        True for an out-of-memory error.
    """
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "ALLOC_FAILED" in text)
