"""Figures of a training run (matplotlib, Agg backend: no display needed).

``plot_loss_history(history, png_path)``: the per-epoch losses that ``refine``/``denoise``
record in ``loss_history.json`` (a list of dicts with ``epoch``, ``loss`` and, for the masked
loss, ``n2n_loss`` and ``mw_loss``), on a log scale, written atomically.
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Mapping, Sequence, Union

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after selecting the backend)
from matplotlib import ticker  # noqa: E402

PathLike = Union[str, os.PathLike]

_CURVES = (("loss", "total loss"), ("n2n_loss", "Noise2Noise term (measured region)"),
           ("mw_loss", "missing-wedge term (unweighted)"))


def plot_loss_history(history: Sequence[Mapping], png_path: PathLike) -> Path:
    """Plot the loss curves of ``history`` (one dict per epoch) into ``png_path``; returns it.
    ``ValueError`` when the history is empty."""
    if not history:
        raise ValueError("empty loss history: nothing to plot")
    png_path = Path(png_path)
    epochs = [int(h["epoch"]) for h in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    try:
        for key, label in _CURVES:
            values = [h.get(key) for h in history]
            if all(v is not None and v > 0 for v in values):
                ax.plot(epochs, values, marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (normalised units)")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%.3g"))  # plain text, no mathtext
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        png_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = png_path.parent / f".{png_path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fig.savefig(tmp, format="png")
            os.replace(tmp, png_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    finally:
        plt.close(fig)
    return png_path
