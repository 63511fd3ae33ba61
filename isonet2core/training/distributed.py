"""Several processes training one model: DistributedDataParallel launch and helpers.

One process per GPU (``torch.multiprocessing.spawn``), NCCL between GPUs; ``gloo`` when the
processes run on the CPU (used by the tests to exercise the same code path without GPUs).
Every process draws the same global batch (the cube plan and augmentations are re-derived
from the seed and the epoch, :mod:`.sampler`), keeps the rows ``rank::world_size`` of it and
DistributedDataParallel averages the gradients, so the weights stay identical on all ranks and
the global batch equals ``batch_size``. Rank 0 alone writes files.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def free_port() -> int:
    """An unused TCP port on the loopback interface for the rendezvous.

    Returns
    -------
    int
        The port.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world_size: int, port: int, backend: str,
           worker: Callable[..., Any], args: Sequence[Any]) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        worker(rank, world_size, *args)
    finally:
        dist.destroy_process_group()


def launch(worker: Callable[..., Any], world_size: int, args: Sequence[Any], *, backend: str) -> None:
    """Run ``worker(rank, world_size, *args)`` in spawned processes joined in one process group.

    Parameters
    ----------
    worker : callable
        A module-level function (spawned processes import it).
    world_size : int
        Number of processes.
    args : sequence
        Picklable arguments after ``rank, world_size``.
    backend : str
        ``"nccl"`` for GPUs, ``"gloo"`` for the CPU.

    Raises
    ------
    Exception
        An exception in any process, re-raised here.
    """
    if world_size < 2:
        raise ValueError(f"distributed training needs at least 2 processes, got {world_size}")
    mp.spawn(_entry, args=(world_size, free_port(), backend, worker, tuple(args)),
             nprocs=world_size, join=True)


def is_distributed() -> bool:
    """Whether this process is in a process group (several training processes).

    Returns
    -------
    bool
        True inside one.
    """
    return dist.is_available() and dist.is_initialized()


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor over all processes.

    Parameters
    ----------
    values : torch.Tensor
        Any shape, on the process's device or the CPU.

    Returns
    -------
    torch.Tensor
        The mean, same shape (``values`` itself when not distributed).
    """
    if not is_distributed():
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def barrier() -> None:
    """Wait for every process of the group (nothing outside one)."""
    if is_distributed():
        dist.barrier()
