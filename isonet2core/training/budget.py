"""Planning a training run: how many subtomograms and epochs, and whether the cubes fit.

The IsoNet2 tutorial's rule of thumb: ``subtomograms per tomogram x tomograms x epochs`` of
about 100 000 cube draws in total (e.g. 10 tomograms x 200 subtomograms x 50 epochs). These
functions solve that product for one factor; the Scipion wizards call them so that nobody
computes it by hand.
"""
from __future__ import annotations

from typing import Optional, Sequence

#: cube draws in a whole training run (subtomograms per tomogram x tomograms x epochs)
RULE_OF_THUMB_TOTAL = 100_000
#: cube draws per epoch shared by the tomograms when ``number_subtomos`` is auto (IsoNet2's rule)
SUBTOMOS_PER_EPOCH = 3000


def _check_positive(name: str, value) -> int:
    if isinstance(value, bool) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def subtomos_per_tomogram(n_tomograms: int, epochs: int,
                          total: int = RULE_OF_THUMB_TOTAL) -> int:
    """Subtomograms per tomogram and epoch so that ``result x n_tomograms x epochs`` is about
    ``total``.

    Parameters
    ----------
    n_tomograms, epochs : int
        Positive.
    total : int
        Cube draws wanted in the run.

    Returns
    -------
    int
        Rounded to the nearest integer, at least 1.

    Raises
    ------
    ValueError
        An argument is not a positive integer.
    """
    n = _check_positive("n_tomograms", n_tomograms)
    e = _check_positive("epochs", epochs)
    t = _check_positive("total", total)
    return max(1, int(round(t / (n * e))))


def epochs_for(n_tomograms: int, subtomos_per_tomo: int,
               total: int = RULE_OF_THUMB_TOTAL) -> int:
    """Epochs so that ``subtomos_per_tomo x n_tomograms x result`` is about ``total``.

    Parameters
    ----------
    n_tomograms, subtomos_per_tomo : int
        Positive.
    total : int
        Cube draws wanted in the run.

    Returns
    -------
    int
        Rounded, at least 1.

    Raises
    ------
    ValueError
        An argument is not a positive integer.
    """
    n = _check_positive("n_tomograms", n_tomograms)
    s = _check_positive("subtomos_per_tomo", subtomos_per_tomo)
    t = _check_positive("total", total)
    return max(1, int(round(t / (n * s))))


def default_subtomos_per_tomogram(n_tomograms: int, per_epoch_total: int = SUBTOMOS_PER_EPOCH) -> int:
    """What training draws per tomogram when ``number_subtomos`` is left empty (auto): about
    ``per_epoch_total`` cubes per epoch shared by the tomograms.

    Parameters
    ----------
    n_tomograms : int
        Tomograms trained on.
    per_epoch_total : int
        Cubes per epoch in all.

    Returns
    -------
    int
        At least 1.
    """
    n = _check_positive("n_tomograms", n_tomograms)
    return max(1, per_epoch_total // n)


def planned_total(n_tomograms: int, subtomos_per_tomo: Optional[int], epochs: int) -> int:
    """Cube draws of a run.

    Parameters
    ----------
    n_tomograms : int
        Tomograms trained on.
    subtomos_per_tomo : int, optional
        Per tomogram and epoch (None: :func:`default_subtomos_per_tomogram`).
    epochs : int
        Epochs.

    Returns
    -------
    int
        The total.
    """
    n = _check_positive("n_tomograms", n_tomograms)
    s = default_subtomos_per_tomogram(n) if subtomos_per_tomo is None else \
        _check_positive("subtomos_per_tomo", subtomos_per_tomo)
    return n * s * _check_positive("epochs", epochs)


def check_fits(shape: Sequence[int], cube_size: int, name: str) -> None:
    """Check that a training cube fits in a tomogram (its smallest edge must hold a cube).

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the tomogram (voxels).
    cube_size : int
        Cube edge (voxels).
    name : str
        The tomogram, named in the error.

    Raises
    ------
    ValueError
        Naming the tomogram.
    """
    if min(shape) < cube_size:
        raise ValueError(f"tomogram {name} of shape {tuple(shape)} (z, y, x) is smaller than "
                         f"cube_size {cube_size}; use a smaller --cube_size")
