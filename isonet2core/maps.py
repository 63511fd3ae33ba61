"""The maps a STAR row provides to a step, checked before any work, and read.

Every command that reads tomograms (deconv, make-mask, refine, denoise, predict) picks its
input files here, so "which map does ``--input_column X`` mean for this tomogram" has one
answer:

* :func:`input_maps` (deconv, make-mask): a map column, or ``rlnTomoName`` meaning the
  tomogram itself; an empty cell falls back to ``rlnTomoReconstructedTomogram``, then to the
  mean of the even/odd halves.
* :func:`single_map_column` (single-map training and prediction): ``auto`` prefers the
  deconvolved map, else the full map.

Volumes are ``(z, y, x)`` float32.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np

from isonet2core import mrcio, star

logger = logging.getLogger(__name__)


def input_maps(table: star.TomogramsTable, row: int, column: str) -> List[Path]:
    """The map file(s) of a row to read for a column: one path, or the two halves to average.

    An empty cell falls back to ``rlnTomoReconstructedTomogram``, then to the mean of
    ``rlnTomoReconstructedTomogramHalf1/2``.

    Parameters
    ----------
    table : star.TomogramsTable
        The tomograms STAR.
    row : int
        0-based position.
    column : str
        A path column of the STAR, or ``rlnTomoName`` meaning the tomogram itself.

    Returns
    -------
    list of Path
        One map or two halves.

    Raises
    ------
    ValueError
        An unknown column or no map.
    """
    if column != star.TOMO_NAME and column not in star.PATH_COLUMNS:
        raise ValueError(f"input_column {column!r} is not a map column; use {star.TOMO_NAME} "
                         f"or one of {', '.join(sorted(star.PATH_COLUMNS))}")
    for candidate in ((column,) if column != star.TOMO_NAME else ()) + (star.TOMO_FULL,):
        if table.value(row, candidate) is not None:
            if candidate != column and column != star.TOMO_NAME:
                logger.info("%s: %s is empty, using %s", table.tomo_name(row), column, candidate)
            return [table.required_path(row, candidate)]
    if table.value(row, star.TOMO_HALF1) is not None and table.value(row, star.TOMO_HALF2) is not None:
        return [table.required_path(row, star.TOMO_HALF1), table.required_path(row, star.TOMO_HALF2)]
    raise ValueError(f"tomogram {table.tomo_name(row)}: no map in {column}, {star.TOMO_FULL} "
                     f"or the half maps")


def single_map_column(table: star.TomogramsTable, row: int, input_column: str = "auto") -> str:
    """The column holding the one map of a row to train on or predict.

    Parameters
    ----------
    table : star.TomogramsTable
        The tomograms STAR.
    row : int
        0-based position.
    input_column : str
        ``auto`` -> ``rlnDeconvTomoName`` when filled, else ``rlnTomoReconstructedTomogram``;
        ``rlnTomoName`` (IsoNet2 habit, where it held the path) means
        ``rlnTomoReconstructedTomogram``; else that column.

    Returns
    -------
    str
        The column.

    Raises
    ------
    ValueError
        Naming the tomogram when the column is empty.
    """
    if input_column in (None, "auto"):
        return table.input_column(row, star.DECONV, (star.TOMO_FULL,))
    if input_column == star.TOMO_NAME:
        input_column = star.TOMO_FULL
    return table.input_column(row, input_column)


def check_maps(paths: Sequence[Path]) -> List[mrcio.MRCInfo]:
    """Check the headers, then the data (finite, not constant; one streamed read); the maps (e.g.
    the halves of a pair) must share one shape and voxel size.

    Parameters
    ----------
    paths : sequence of Path
        The maps.

    Returns
    -------
    list of mrcio.MRCInfo
        Their headers.

    Raises
    ------
    ValueError, FileNotFoundError
        Naming the file.
    """
    infos = [mrcio.read_header(p) for p in paths]
    mrcio.check_same_grid(infos)
    for info in infos:
        mrcio.check_data(info.path, info=info)
    return infos


def read_map(paths: Sequence[Path]) -> np.ndarray:
    """Read one map, or the mean of two half maps; checked finite and non-constant.

    Parameters
    ----------
    paths : sequence of Path
        One map or two halves.

    Returns
    -------
    numpy.ndarray
        float32 ``(z, y, x)``.
    """
    data = mrcio.read_mrc(paths[0])[0]
    if len(paths) > 1:
        for p in paths[1:]:
            data += mrcio.read_mrc(p)[0]
        data /= np.float32(len(paths))
    mrcio.check_finite_and_nonconstant(data, " + ".join(str(p) for p in paths))
    return data


@dataclass(frozen=True)
class MapJob:
    """One tomogram of a per-map step (deconv, make-mask): its STAR ``row``, input maps
    ``sources`` (checked), their headers ``infos`` and the output file ``target``."""
    row: int
    name: str
    sources: List[Path]
    infos: List[mrcio.MRCInfo]
    target: Path


def plan_map_jobs(table: star.TomogramsTable, tomo_idx: Optional[Sequence[int]], input_column: str,
                  target_of: Callable[[str], Path]) -> List[MapJob]:
    """The jobs of a per-map step (deconv, make-mask), everything checked before the first runs.

    Parameters
    ----------
    table : star.TomogramsTable
        The tomograms STAR.
    tomo_idx : sequence of int, optional
        rlnIndex values of the rows (None: all).
    input_column : str
        Which maps (:func:`input_maps`), each checked (:func:`check_maps`).
    target_of : callable
        rlnTomoName -> output file; refused when it is one of the inputs.

    Returns
    -------
    list of MapJob
        In table order.

    Raises
    ------
    ValueError, FileNotFoundError
        Naming the file.
    """
    jobs = []
    for row in table.rows_for(tomo_idx):
        sources = input_maps(table, row, input_column)
        infos = check_maps(sources)
        target = target_of(table.tomo_name(row))
        mrcio.check_not_input(target, sources)
        jobs.append(MapJob(row, table.tomo_name(row), sources, infos, target))
    return jobs
