"""Exponential moving average (EMA) of a network's weights, the weights that predict uses.

With ``ema_decay = d`` every optimiser step moves each floating-point entry of the averaged
network's state (weights, biases and the batch-normalisation running statistics) towards the
trained network's: ``ema <- ema + (1 - d_n) * (live - ema)``, with the warm-up
``d_n = min(d, (1 + n) / (10 + n))`` after ``n`` earlier updates (the convention of
TensorFlow's ``ExponentialMovingAverage(num_updates=...)``). The warm-up makes a short run
average roughly its last tenth of steps, a long one the last ``1 / (1 - d)`` steps; integer
entries (``num_batches_tracked``) are copied.
"""
from __future__ import annotations

import torch
from torch import nn


def ema_decay_at(decay: float, updates: int) -> float:
    """The decay of update number ``updates + 1``.

    Parameters
    ----------
    decay : float
        The configured decay ``d``, in (0, 1).
    updates : int
        Updates made before this one (``n >= 0``).

    Returns
    -------
    float
        ``min(d, (1 + n) / (10 + n))``.
    """
    if not 0 < decay < 1:
        raise ValueError(f"ema decay must be in (0, 1), got {decay}")
    if updates < 0:
        raise ValueError(f"updates must not be negative, got {updates}")
    return min(decay, (1.0 + updates) / (10.0 + updates))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """Move ``ema``'s state towards ``model``'s in place: ``ema <- decay * ema + (1 - decay) * model``.

    Parameters
    ----------
    ema : nn.Module
        The averaged network (same architecture as ``model``).
    model : nn.Module
        The trained network.
    decay : float
        Weight of the old average, in [0, 1] (``ema_decay_at`` gives the warmed-up one).
    """
    if not 0 <= decay <= 1:
        raise ValueError(f"decay must be in [0, 1], got {decay}")
    live = model.state_dict()
    for name, value in ema.state_dict().items():
        source = live[name]
        if value.is_floating_point():
            value.lerp_(source.to(value.dtype), 1.0 - decay)
        else:
            value.copy_(source)
