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
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple, TypeVar

import numpy as np

from isonet2core import memory
from isonet2core.io import mrcio, output_guard, star

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
    the halves of a pair) must share one shape and voxel size, and two halves must differ
    (:func:`check_halves_differ`).

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
    for info in infos:
        if min(info.shape) < 2:
            raise ValueError(f"{info.path} holds {'x'.join(map(str, info.shape))} (z, y, x) voxels: an "
                             "image or a line, not a tomogram (at least 2 voxels on every axis)")
    mrcio.check_same_grid(infos)
    for info in infos:
        mrcio.check_data(info.path, info=info)
    if len(infos) == 2:
        check_halves_differ(infos[0], infos[1])
    return infos


_COMPARE_BYTES = 64 * 1024   # bytes per block compared by check_halves_differ (a fixed, small peak)


def check_halves_differ(even: mrcio.MRCInfo, odd: mrcio.MRCInfo) -> None:
    """Refuse even and odd halves that are one file, or two files with the same data.

    Two real half reconstructions differ in their first block of voxels, so the comparison
    (block by block, from each file's data offset) usually reads one block of each; only
    identical data is read to the end.

    Parameters
    ----------
    even, odd : mrcio.MRCInfo
        The halves' headers.

    Raises
    ------
    ValueError
        Naming both files.
    """
    a, b = Path(even.path), Path(odd.path)
    if output_guard.same_file(a, b):
        raise ValueError(f"even and odd halves are the same file: {a} and {b}; Noise2Noise needs "
                         "two independent half reconstructions")
    n = int(np.prod(even.shape)) * even.dtype.itemsize
    if even.shape != odd.shape or even.dtype != odd.dtype:
        return
    with open(a, "rb") as fa, open(b, "rb") as fb:
        fa.seek(even.data_offset)
        fb.seek(odd.data_offset)
        while n > 0:
            block = min(n, _COMPARE_BYTES)
            if fa.read(block) != fb.read(block):
                return
            n -= block
    raise ValueError(f"even and odd halves hold identical data: {a} and {b}; Noise2Noise needs "
                     "two independent half reconstructions")


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


class MapPlanes:
    """The z planes of one map, or of the mean of two half maps, read on demand (positioned reads,
    :class:`isonet2core.io.mrcio.PlaneReader`): ``planes[z0:z1]`` is a new float32 array
    ``(z1 - z0, y, x)``, the same values :func:`read_map` gives for those planes; nothing stays in
    memory between reads.

    ``shape`` is ``(z, y, x)``, ``paths`` the files, ``name`` them joined for messages and
    ``stored_itemsize`` the bytes per voxel of the files' own dtype (what a read of them costs
    before the float32 conversion).
    """
    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, paths: Sequence[Path]):
        self.paths = [Path(p) for p in paths]
        self._readers = [mrcio.open_planes(p) for p in self.paths]
        self.shape = self._readers[0].shape
        for reader in self._readers[1:]:
            if reader.shape != self.shape:
                raise ValueError(f"half maps differ in shape: {self.paths[0]} {self.shape} vs "
                                 f"{reader.path} {reader.shape}")
        self.name = " + ".join(str(p) for p in self.paths)
        self.stored_itemsize = max(r.info.dtype.itemsize for r in self._readers)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index: slice) -> np.ndarray:
        data = self._readers[0][index]
        if len(self._readers) > 1:
            for reader in self._readers[1:]:
                data += reader[index]
            data /= np.float32(len(self._readers))
        return data


def open_map(paths: Sequence[Path]) -> MapPlanes:
    """A plane-by-plane reader of one map or of the mean of two half maps (:class:`MapPlanes`).

    Parameters
    ----------
    paths : sequence of Path
        One map or two halves (checked by :func:`check_maps`).

    Returns
    -------
    MapPlanes
        ``planes[z0:z1]`` gives float32 ``(k, y, x)``.
    """
    return MapPlanes(paths)


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
                  target_of: Callable[[str], Path], output_column: Optional[str] = None) -> List[MapJob]:
    """The jobs of a per-map step (deconv, make-mask), everything checked before the first runs.

    Parameters
    ----------
    table : star.TomogramsTable
        The tomograms STAR (its ``source`` is the STAR updated).
    tomo_idx : sequence of int, optional
        rlnIndex values of the rows (None: all).
    input_column : str
        Which maps (:func:`input_maps`), each checked (:func:`check_maps`).
    target_of : callable
        rlnTomoName -> output file; refused when it is any file of the table (any row, any
        column, :func:`isonet2core.io.output_guard.table_inputs`) or the STAR.
    output_column : str, optional
        The column the step fills with ``target``: a cell already naming that same file is
        the one output a re-run may replace.

    Returns
    -------
    list of MapJob
        In table order; the output folders exist, accept new files and have room for the
        outputs (:func:`isonet2core.io.output_guard.check_outputs`).

    Raises
    ------
    ValueError, FileNotFoundError, PermissionError, OSError
        Naming the file or folder.
    """
    jobs = []
    for row in table.rows_for(tomo_idx):
        sources = input_maps(table, row, input_column)
        infos = check_maps(sources)
        target = target_of(table.tomo_name(row))
        mrcio.check_not_input(target, sources)
        jobs.append(MapJob(row, table.tomo_name(row), sources, infos, target))
    replaced = {(job.row, output_column): job.target for job in jobs} if output_column else {}
    inputs = [*output_guard.table_inputs(table, replaced), *(p for job in jobs for p in job.sources)]
    output_guard.check_outputs([job.target for job in jobs], inputs, star_path=table.source,
                          sizes=[output_guard.mrc_bytes(job.infos[0].shape) for job in jobs])
    return jobs


def check_scratch_space(jobs: Sequence[MapJob], scratch_bytes: Sequence[int]) -> None:
    """The outputs of a per-map step and the largest of its scratch files (one job's at a time,
    beside its output: :mod:`isonet2core.io.scratch`) fit in the free disk space.

    Parameters
    ----------
    jobs : sequence of MapJob
        The step's jobs (their folders exist: :func:`plan_map_jobs`).
    scratch_bytes : sequence of int
        Each job's scratch bytes (0: none).

    Raises
    ------
    OSError
        ``ENOSPC``, naming the folder, the bytes needed and the bytes free
        (:func:`isonet2core.io.output_guard.check_free_space`).
    """
    if not jobs or max(scratch_bytes) <= 0:
        return
    largest = int(np.argmax(scratch_bytes))
    target = jobs[largest].target
    output_guard.check_free_space(
        [job.target for job in jobs] + [target.with_name(f".{target.name}.scratch")],
        [output_guard.mrc_bytes(job.infos[0].shape) for job in jobs] + [int(scratch_bytes[largest])])


class _Plan(Protocol):
    @property
    def shape(self) -> Tuple[int, int, int]: ...

    @property
    def scratch_bytes(self) -> int: ...


_PlanT = TypeVar("_PlanT", bound=_Plan)


def plan_memory(jobs: Sequence[MapJob], memory_gb: Optional[float],
                plan: Callable[..., _PlanT]) -> Tuple[Dict[int, _PlanT], Optional[str]]:
    """Plan every job of a per-map step within the memory budget, before any work, and check
    the disk space of its outputs and scratch files (:func:`check_scratch_space`).

    Parameters
    ----------
    jobs : sequence of MapJob
        The step's jobs (:func:`plan_map_jobs`).
    memory_gb : float, optional
        The step's ``memory_gb`` (:func:`isonet2core.memory.work_budget`).
    plan : callable
        ``plan(shape, work_bytes=, stored_itemsize=, n_maps=, budget=, name=)`` -> a plan with
        ``scratch_bytes`` (``plan_deconv``, ``plan_mask`` with their config bound); it raises
        for a tomogram that does not fit.

    Returns
    -------
    dict of int to plan, and str or None
        The plans by STAR row, and the budget in words (None: unknown).
    """
    work, budget = memory.work_budget(memory_gb)
    plans = {job.row: plan(job.infos[0].shape, work_bytes=work,
                           stored_itemsize=max(i.dtype.itemsize for i in job.infos),
                           n_maps=len(job.sources), budget=budget,
                           name=f"tomogram {job.name} ({' + '.join(map(str, job.sources))})")
             for job in jobs}
    check_scratch_space(jobs, [plans[job.row].scratch_bytes for job in jobs])
    return plans, budget


def map_plan(reader: MapPlanes, plan: Optional[_PlanT], make: Callable[..., _PlanT], what: str) -> _PlanT:
    """The plan of one map of a per-map step: ``plan`` checked against the map's shape, or, when
    None, one made with no budget but ``STREAM_BYTES``.

    Parameters
    ----------
    reader : MapPlanes
        The map (:func:`open_map`).
    plan : plan, optional
        A plan with ``shape``, or None.
    make : callable
        ``make(shape, work_bytes=, stored_itemsize=, n_maps=, name=)`` -> a plan (as in
        :func:`plan_memory`).
    what : str
        Names the plan in the refusal (``deconvolution``, ``mask``).

    Returns
    -------
    plan
        ``plan`` or the one made.

    Raises
    ------
    ValueError
        Naming the map: a plan for another shape.
    """
    if plan is None:
        plan = make(reader.shape, work_bytes=None, stored_itemsize=reader.stored_itemsize,
                    n_maps=len(reader.paths), name=reader.name)
    if plan.shape != tuple(reader.shape):
        raise ValueError(f"{reader.name}: a {what} plan for shape {plan.shape} given for a map of "
                         f"shape {reader.shape}")
    return plan
