"""Progress of a running training, from the loss history it writes after every epoch.

The trainer writes ``loss_history.json`` (atomically) after each epoch: one entry per epoch
with ``epoch``, ``loss`` and ``seconds``. These functions turn it into the one line that the
Scipion protocols' summaries and the demo show while a training runs. No torch: the plugin
imports this module inside Scipion.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence

from isonet2core.io.output_names import HISTORY_FILE


def read_history(model_dir) -> List[dict]:
    """The loss history of a training folder.

    Parameters
    ----------
    model_dir : str or Path
        The training output folder.

    Returns
    -------
    list of dict
        One entry per finished epoch (``[]`` before the first).
    """
    path = Path(model_dir) / HISTORY_FILE
    if not path.is_file():
        return []
    entries = json.loads(path.read_text())
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a list of epochs, got {type(entries).__name__}")
    return entries


def seconds_left(history: Sequence[dict], epochs_total: int) -> Optional[float]:
    """Seconds the remaining epochs should take at the mean duration of the finished ones.

    Parameters
    ----------
    history : sequence of dict
        :func:`read_history`.
    epochs_total : int
        Epochs of the run.

    Returns
    -------
    float or None
        None before the first epoch, 0 when all are done.
    """
    timed = [float(h["seconds"]) for h in history if h.get("seconds") is not None]
    if not timed:
        return None
    last = max(int(h["epoch"]) for h in history)
    return max(0, int(epochs_total) - last) * sum(timed) / len(timed)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def training_progress(history: Sequence[dict], epochs_total: int) -> Optional[str]:
    """One line on a training run's progress.

    Parameters
    ----------
    history : sequence of dict
        :func:`read_history`.
    epochs_total : int
        Epochs of the run.

    Returns
    -------
    str or None
        ``"epoch 3/10, loss 0.1234, about 2.5 min left"`` for the last finished epoch; None
        before the first.
    """
    if not history:
        return None
    last = max(history, key=lambda h: int(h["epoch"]))
    line = f"epoch {int(last['epoch'])}/{int(epochs_total)}, loss {float(last['loss']):.4g}"
    left = seconds_left(history, epochs_total)
    if left:
        line += f", about {_duration(left)} left"
    return line
