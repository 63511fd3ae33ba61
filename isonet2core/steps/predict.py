"""Applying a trained network to the tomograms of a STAR file (``isonet2 predict``):
``predict_tomograms`` applies a model file to the tomograms of a STAR file:

* refine models (methods ``isonet2-n2n``, ``isonet2``) write ``<rlnTomoName>_corrected.mrc``
  and the column ``rlnCorrectedTomoName``; denoise models (method ``n2n``) write
  ``<rlnTomoName>_denoised.mrc`` and ``rlnDenoisedTomoName``;
* N2N models (``isonet2-n2n``, ``n2n``) with ``input_column="auto"`` predict the even and odd
  halves separately (``rlnTomoReconstructedTomogramHalf1/2``) and write them as
  ``..._half1.mrc`` / ``..._half2.mrc`` (columns ``rlnCorrectedTomoHalf1/2`` or
  ``rlnDenoisedTomoHalf1/2``), each streamed to its file. The main output is, with
  ``halves_input="average"``, the prediction of the halves' voxel-wise average (read plane
  block by plane block from both files, :class:`~isonet2core.steps.map_streaming.MeanOfMaps`:
  half the noise of either half, so a refine network fills the wedge from better data); with
  ``"halves"`` the average of the two half predictions (the IsoNet2 program's way); ``"auto"``
  (default, :func:`average_halves`): average for refine models, halves for denoise models
  (measured: bench/results/issue27_predict_from_halves_average.md). With
  ``fsc_weighting`` the main output is FSC-weighted by the two half predictions
  (:mod:`isonet2core.imaging.fsc_weighting`; the halves are written unweighted; the unweighted
  prediction of the average is a hidden file beside the output, removed after,
  :func:`isonet2core.io.output_names.unweighted_scratch_path`). A tomogram without halves,
  a single-map model (``isonet2``) or an explicit ``input_column`` uses one map: ``auto`` is
  ``rlnDeconvTomoName`` when filled, else ``rlnTomoReconstructedTomogram``;
* split-halves (two networks, from ``--model2`` or the checkpoint's ``model2_state``): the
  first network predicts the even half and the second the odd half (independent, gold-standard
  style); on a single map (and on the halves' average) both predict it and their outputs
  are averaged tile by tile (the blending is linear, so this is the average of the two
  stitched maps);
* ``apply_mw_x1`` applies to refine models only: a denoise model was trained on inputs that
  were never re-wedged, so its inputs are not masked either;
* the tilt range and microscope come from each tomogram's STAR row; the CTF settings that the
  model was trained with (``ctf_mode``, ``do_phaseflip_input``) from the checkpoint;
* everything is validated first (model files, STAR, every input header, the data of every
  input (finite, not constant; one streamed read), halves of equal shape and voxel size,
  output names distinct from inputs, the output folder created, the y bands of every
  tomogram planned within ``memory_gb`` (:func:`isonet2core.steps.tiling.plan_bands`: a
  tomogram whose narrowest band does not fit is refused); each MRC is written
  atomically with the input's voxel size, never over an input, and each tomogram's row of the
  STAR is updated after it (:func:`star.update_rows`: locked, re-read, written atomically), so
  an interrupted run leaves only complete files; a rerun recomputes and replaces the outputs;
* a second predict writing maps of the same names into the same folder at the same time is
  refused, naming the first (:func:`isonet2core.io.locks.output_locks`).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from isonet2core import memory
from isonet2core.config import Microscope, PredictConfig, method_traits
from isonet2core.io import output_names, star
from isonet2core.io.locks import output_locks
from isonet2core.io.model_file import ModelFile
from isonet2core.io.output_guard import check_outputs, mrc_bytes, table_inputs
from isonet2core.io.output_names import PathLike
from isonet2core.steps import step_inputs, tiling
from isonet2core.steps.inference import tile_grid
from isonet2core.steps.map_streaming import predict_file, write_average

log = logging.getLogger(__name__)


@dataclass
class _Job:
    """One tomogram to predict: its inputs (one map, or even and odd) and outputs."""
    row: int
    name: str
    microscope: Microscope
    inputs: List[Path]
    voxel_size_a: float
    output: Path
    halves: Tuple[Optional[Path], Optional[Path]] = (None, None)
    shape: Tuple[int, int, int] = field(default=(0, 0, 0))


def _load_models(model_path: PathLike, model2_path: Optional[PathLike]):
    loaded = ModelFile.load(model_path)
    model = loaded.network(name=str(model_path))
    model2 = None
    if model2_path is not None:
        twin = ModelFile.load(model2_path)
        twin.check_compatible(cube_size=loaded.cube_size, name=str(model2_path))
        if twin.method != loaded.method:
            raise ValueError(f"{model2_path} was trained with method {twin.method!r} but "
                             f"{model_path} with {loaded.method!r}; --model2 must be its split-halves twin")
        model2 = twin.network(name=str(model2_path))
    elif loaded.split_halves:
        model2 = loaded.network(second=True, name=str(model_path))
    return loaded, model, model2


def _plan(table: star.TomogramsTable, rows: Sequence[int], n2n: bool, input_column: str,
          output_dir: Path, suffix: str, prefix: str = "", phaseflip: bool = False) -> List[_Job]:
    jobs: List[_Job] = []
    for row in rows:
        name = output_names.safe_name(table.tomo_name(row))
        microscope = table.microscope(row, "the model's phase flip of its inputs" if phaseflip else None)
        use_halves = (n2n and input_column in (None, "auto")
                      and table.value(row, star.TOMO_HALF1) is not None
                      and table.value(row, star.TOMO_HALF2) is not None)
        if use_halves:
            inputs = [table.required_path(row, star.TOMO_HALF1), table.required_path(row, star.TOMO_HALF2)]
        else:
            if n2n and input_column in (None, "auto"):
                log.warning("%s: no even/odd halves; predicting the single map with the N2N model", name)
            inputs = [table.required_path(row, step_inputs.single_map_column(table, row, input_column))]
        infos = step_inputs.check_maps(inputs)
        voxel = infos[0].voxel_size_a or microscope.pixel_size_a
        if infos[0].voxel_size_a and abs(infos[0].voxel_size_a - microscope.pixel_size_a) > 0.01 * microscope.pixel_size_a:
            log.warning("%s: header voxel size %.4g A differs from the STAR pixel size %.4g A; "
                        "the output keeps the header's", name, infos[0].voxel_size_a, microscope.pixel_size_a)
        out, half_paths = output_names.predicted_paths(output_dir, table.tomo_name(row), suffix, prefix)
        halves = half_paths if use_halves else (None, None)
        jobs.append(_Job(row, name, microscope, inputs, voxel, out, halves, infos[0].shape))
    outputs = [p for j in jobs for p in (j.output, *j.halves) if p is not None]
    if len(set(outputs)) != len(outputs):
        raise ValueError(f"two tomograms would write the same output file in {output_dir}; "
                         "give the tomograms distinct rlnTomoName values")
    return jobs


def average_halves(config: PredictConfig, denoise: bool) -> bool:
    """Whether the main map of an N2N model on halves is predicted from the halves' average
    (``halves_input``; ``auto``: for refine models, not for denoise models).

    Parameters
    ----------
    config : PredictConfig
        The settings.
    denoise : bool
        The model is a denoise (``n2n``) model.

    Returns
    -------
    bool
    """
    return config.halves_input == "average" or (config.halves_input == "auto" and not denoise)


def _main_from_average(job: _Job, from_average: bool) -> bool:
    """Whether the job's main map is predicted from its halves' average (two input maps read per
    tile), not averaged from its half predictions or predicted from a single map."""
    return job.halves[0] is not None and from_average


def _scratch_average(job: _Job, from_average: bool, config: PredictConfig) -> bool:
    """Whether the job's main map is first predicted unweighted into a scratch file (the halves'
    average, FSC-weighted afterwards by the half predictions)."""
    return _main_from_average(job, from_average) and config.fsc_weighting


def _check_outputs(table: star.TomogramsTable, jobs: Sequence[_Job], columns: Sequence[str],
                   models: Sequence[Optional[PathLike]], config: PredictConfig, from_average: bool) -> None:
    """Before any work (:mod:`isonet2core.io.output_guard`): no output is a file of the table (any row,
    any column; a cell naming that very output excepted), a model file or the STAR; the folder
    accepts files, the STAR can be updated, the outputs (and the unweighted prediction of the
    halves' average, a hidden scratch map beside the main map) fit in the free space."""
    targets, sizes, replaced = [], [], {}
    for j in jobs:
        for column, path in zip(columns, (j.output, *j.halves)):
            if path is not None:
                targets.append(path)
                sizes.append(mrc_bytes(j.shape) * (2 if path == j.output and _scratch_average(j, from_average, config) else 1))
                replaced[(j.row, column)] = path
    inputs = [*table_inputs(table, replaced), *(p for j in jobs for p in j.inputs),
              *(m for m in models if m is not None)]
    check_outputs(targets, inputs, sizes=sizes, star_path=table.source)


def predict_tomograms(star_path: PathLike, model_path: PathLike, model2_path: Optional[PathLike] = None,
                      output_dir: PathLike = "corrected_tomos", config: PredictConfig = PredictConfig(),
                      tomo_idx: Optional[Sequence[int]] = None, device: Union[str, torch.device] = "cpu",
                      input_column: str = "auto") -> List[Path]:
    """Predict the tomograms of a STAR file with a trained model (policy: module docstring).

    Parameters
    ----------
    star_path : path
        The tomograms STAR; its new columns (rlnCorrectedTomoName and halves, or
        rlnDenoisedTomoName) are written into it atomically.
    model_path, model2_path : path
        The model file; ``model2_path`` the odd-half network of split-halves training.
    output_dir : path
        Folder of the predicted MRC files (names: :mod:`isonet2core.io.output_names`).
    config : PredictConfig
        Tiling, precision, batch and output settings.
    tomo_idx : sequence of int, optional
        rlnIndex values of the tomograms to predict; None: all.
    device : str or torch.device
        Where the network runs.
    input_column : str
        STAR column of the maps; ``auto``: the halves for N2N models, else the deconvolved
        map when filled, else the full map.

    Returns
    -------
    list of Path
        The MRC files written, ``(z, y, x)`` float32 at the tomogram's pixel size.
    """
    config.validate()
    star_path = Path(star_path)
    table = star.TomogramsTable.read(star_path)
    rows = table.rows_for(tomo_idx)
    loaded, model, model2 = _load_models(model_path, model2_path)
    method, cube = loaded.method, int(loaded.cube_size)
    traits = method_traits(method)
    n2n, denoise = traits.halves, not traits.fills_wedge
    suffix = traits.output                       # output_names.CORRECTED or output_names.DENOISED
    columns = ((star.DENOISED, star.DENOISED_HALF1, star.DENOISED_HALF2) if denoise
               else (star.CORRECTED, star.CORRECTED_HALF1, star.CORRECTED_HALF2))
    phaseflip = loaded.flips_input(config.is_ctf_flipped)
    if denoise and config.apply_mw_x1:
        log.info("denoise model: its inputs were never re-wedged, so apply_mw_x1 is not applied")
        config = dataclasses.replace(config, apply_mw_x1=False)
    output_dir = Path(output_dir)
    jobs = _plan(table, rows, n2n, input_column, output_dir, suffix, config.output_prefix, phaseflip)
    from_average = average_halves(config, denoise)
    _check_outputs(table, jobs, columns, (model_path, model2_path), config, from_average)
    work, budget = memory.work_budget(config.memory_gb)
    if work is not None:
        work -= tiling.INFERENCE_BYTES
        budget = f"{budget}, less {memory.format_bytes(tiling.INFERENCE_BYTES)} for the network's batch"
    bands = {job.row: tiling.plan_bands(tile_grid(job.shape, cube, config, loaded.source, job.name),
                                        work, name=f"tomogram {job.name} ({job.inputs[0]})", budget=budget,
                                        input_slabs=2 if _main_from_average(job, from_average) else 1)
             for job in jobs}
    trained = [float(t["pixel_size_a"]) for t in loaded.tomograms.values()
               if isinstance(t, Mapping) and t.get("pixel_size_a")]
    protect = [p for j in jobs for p in j.inputs] + [star_path]
    log.info("predicting %d tomogram(s) with %s (%s, %s, cube %d%s%s) on %s", len(jobs), model_path,
             method, loaded.arch, cube, ", split halves" if model2 is not None else "",
             ", phase-flipped inputs" if phaseflip else "", device)
    written: List[Path] = []
    with output_locks([j.output for j in jobs]):   # another predict writing them: refused
        for job in jobs:
            t0 = time.time()
            if trained and all(abs(job.microscope.pixel_size_a - p) > 0.1 * p for p in trained):
                log.warning("%s: pixel size %.4g A differs from the training data's (%s A)", job.name,
                            job.microscope.pixel_size_a, ", ".join(f"{p:.4g}" for p in trained))

            def run(nets: Sequence[nn.Module], source: Union[Path, Sequence[Path]], target: Path,
                    job: _Job = job) -> Path:
                return predict_file(nets, source, target, cube_size=cube, config=config,
                                    microscope=job.microscope, phaseflip=phaseflip, device=device,
                                    model_source=loaded.source, bands=bands[job.row],
                                    voxel_size_a=job.voxel_size_a, protect=protect)

            half1, half2 = job.halves
            if half1 is not None and half2 is not None:
                nets = [model] if model2 is None else [model, model2]
                weights_from = (half1, half2) if config.fsc_weighting else None
                written.append(run(nets[:1], job.inputs[0], half1))
                written.append(run(nets[-1:], job.inputs[1], half2))
                if not from_average:
                    written.append(write_average((half1, half2), job.output, block_planes=cube,
                                                 voxel_size_a=job.voxel_size_a, protect=protect,
                                                 weights_from=weights_from))
                elif weights_from is None:
                    written.append(run(nets, job.inputs, job.output))
                else:
                    unweighted = output_names.unweighted_scratch_path(job.output)
                    try:
                        run(nets, job.inputs, unweighted)
                        written.append(write_average((unweighted,), job.output, block_planes=cube,
                                                     voxel_size_a=job.voxel_size_a, protect=protect,
                                                     weights_from=weights_from))
                    finally:
                        unweighted.unlink(missing_ok=True)
            else:
                written.append(run([model] if model2 is None else [model, model2], job.inputs[0], job.output))
            if config.save_slices:
                from isonet2core.report.figures import save_slices  # matplotlib only when asked
                written += save_slices(job.output, job.voxel_size_a)
            star.update_rows(star_path, {(table.tomo_name(job.row), table.index(job.row)): dict(
                zip(columns, (job.output, *job.halves)))})
            log.info("%s: wrote %s in %.1f s", job.name, job.output, time.time() - t0)
    return written
