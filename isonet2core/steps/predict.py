"""Applying a trained network to whole tomograms (``isonet2 predict``).

``predict_planes`` runs a model over one ``(z, y, x)`` map, tile by tile (``tiling.py``), and
hands out the result z plane block by z plane block:

1. **Normalisation** exactly as in training: ``normalize.normalization_stats`` of the map being
   predicted (its central slices; the even and odd halves each with their own statistics),
   ``(tile - mean) / std``.
2. **Input filters** on each tile, in Fourier space, in one multiplication: the missing-wedge
   mask of the tomogram's tilt range (``apply_mw_x1``, as the training inputs were re-wedged;
   ``wedge.wedge_mask``) and, when the model was trained on phase-flipped inputs
   (``input_needs_phaseflip``), the phase flip ``sign(CTF)`` of the tomogram's microscope
   (``ctf.ctf_sign``), unless the tomograms are already phase flipped (``--isCTFflipped``).
3. **Network** on batches of ``batch_size`` tiles under ``torch.inference_mode``, with the
   autocast of :func:`isonet2core.device.autocast_dtype` (by default when ``mixed_precision``:
   CUDA float16, a CPU with native bfloat16 bfloat16, other CPUs float32), through
   ``torch.compile`` when ``compile_model``.
4. **Stitching** with smooth Hann blending, then ``normalize.denormalize`` with the same mean
   and std: the output keeps the input's contrast (protein dark) and scale.

Memory does not grow with the number of z planes: the map is read one slab of z planes per
z-row of tiles, the outputs are blended in a rolling buffer of the planes one z-row covers, and
finished planes leave it at once (``tiling.py``). ``predict_file`` streams them into the output
file (``mrcio.stream_mrc``) from an input read with positioned reads (``mrcio.open_planes``):
its peak is the model and one batch of tiles with their activations, plus a few slabs of
``cube_size`` planes ``(cube_size, y, x)`` float32 (and the normalisation's and the input
check's reads, each capped at a fixed size). ``predict_volume`` collects the planes into one
float32 array (for callers that want the array: the trainer's previews, tests, benchmarks).

``predict_tomograms`` applies a model file to the tomograms of a STAR file:

* refine models (methods ``isonet2-n2n``, ``isonet2``) write ``<rlnTomoName>_corrected.mrc``
  and the column ``rlnCorrectedTomoName``; denoise models (method ``n2n``) write
  ``<rlnTomoName>_denoised.mrc`` and ``rlnDenoisedTomoName``;
* N2N models (``isonet2-n2n``, ``n2n``) with ``input_column="auto"`` predict the even and odd
  halves separately (``rlnTomoReconstructedTomogramHalf1/2``), write them as
  ``..._half1.mrc`` / ``..._half2.mrc`` (columns ``rlnCorrectedTomoHalf1/2`` or
  ``rlnDenoisedTomoHalf1/2``), each streamed to its file, and their average, computed from
  the two written files plane block by plane block, as the main output; with ``fsc_weighting``
  that average is FSC-weighted by the two half predictions (:mod:`isonet2core.imaging.fsc_weighting`;
  the halves are written unweighted). A tomogram without halves,
  a single-map model (``isonet2``) or an explicit ``input_column`` uses one map: ``auto`` is
  ``rlnDeconvTomoName`` when filled, else ``rlnTomoReconstructedTomogram``;
* split-halves (two networks, from ``--model2`` or the checkpoint's ``model2_state``): the
  first network predicts the even half and the second the odd half (independent, gold-standard
  style); on a single map both predict it and their outputs are averaged tile by tile (the
  blending is linear, so this is the average of the two stitched maps);
* ``apply_mw_x1`` applies to refine models only: a denoise model was trained on inputs that
  were never re-wedged, so its inputs are not masked either;
* the tilt range and microscope come from each tomogram's STAR row; the CTF settings that the
  model was trained with (``ctf_mode``, ``do_phaseflip_input``) from the checkpoint;
* everything is validated first (model files, STAR, every input header, the data of every
  input (finite, not constant; one streamed read), halves of equal shape and voxel size,
  output names distinct from inputs, the output folder created); each MRC is written
  atomically with the input's voxel size, never over an input, and each tomogram's row of the
  STAR is updated after it (:func:`star.update_rows`: locked, re-read, written atomically), so
  an interrupted run leaves only complete files; a rerun recomputes and replaces the outputs;
* a second predict writing maps of the same names into the same folder at the same time is
  refused, naming the first (:func:`isonet2core.io.locks.output_locks`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from isonet2core.config import Microscope, PredictConfig, flips_input, method_traits
from isonet2core.device import autocast_dtype
from isonet2core.imaging import ctf, fourier, fsc_weighting, normalize, wedge
from isonet2core.io import mrcio, output_names, star
from isonet2core.io.locks import output_locks
from isonet2core.io.model_file import PROGRAM_SOURCE, ModelFile
from isonet2core.io.output_guard import check_outputs, mrc_bytes, table_inputs
from isonet2core.io.output_names import PathLike
from isonet2core.nets.unet import SIZE_MULTIPLE, compiled
from isonet2core.steps import step_inputs, tiling

log = logging.getLogger(__name__)

def input_needs_phaseflip(train_config: Mapping, is_ctf_flipped: bool) -> bool:
    """Whether a model's inputs are phase flipped (:func:`isonet2core.config.flips_input` applied
    to the training settings a checkpoint stores).

    Parameters
    ----------
    train_config : mapping
        The training settings (``config.to_dict(TrainConfig)``, as the checkpoint stores them).
    is_ctf_flipped : bool
        The maps at hand are already flipped.

    Returns
    -------
    bool
        True when the inputs are flipped.
    """
    return flips_input(train_config.get("ctf_mode"), bool(train_config.get("do_phaseflip_input", True)),
                       is_ctf_flipped)


def _fourier_input_filter(cube: int, microscope: Microscope, apply_mw_x1: bool, phaseflip: bool,
                          device: torch.device, program: bool = False) -> Optional[torch.Tensor]:
    """rfft-layout filter ``(cube, cube, cube // 2 + 1)`` applied to every input tile, or None.
    For models of the IsoNet2 program (``program``) its own conventions, as
    its training inputs were filtered: the wedge mask cut to the Nyquist sphere
    (``|k| <= 0.5``) and its sampling of the CTF sign (:func:`ctf.ctf_sign`)."""
    shape = (cube, cube, cube)
    filt = None
    if apply_mw_x1:
        filt = wedge.wedge_mask(shape, microscope.tilt_min_deg, microscope.tilt_max_deg,
                                rfft=True, device=device)
        if program:
            filt = filt * (fourier.radial_freq(shape, rfft=True, device=device) <= 0.5)
    if phaseflip:
        flip = ctf.ctf_sign(shape, microscope, rfft=True, device=device,
                            sampling="isonet2-program" if program else "exact")
        filt = flip if filt is None else filt * flip
    return filt


def predict_planes(models: Sequence[nn.Module], volume, *, cube_size: int,
                   config: PredictConfig = PredictConfig(), microscope: Microscope,
                   phaseflip: bool = False, device: Union[str, torch.device] = "cpu",
                   name: str = "volume", model_source: Optional[str] = None) -> Generator[tiling.Planes, None, None]:
    """Apply networks to a map of any shape, streaming the result by z planes, in the input's
    contrast and scale (module docstring).

    While the generator runs, the networks are on ``device`` in eval mode (channels-last on the
    CPU, restored when it ends or is closed); gradients are off only inside its network calls.

    Parameters
    ----------
    models : sequence of nn.Module
        One network, or several whose outputs are averaged tile by tile (split halves on one map).
    volume : array_like
        ``(z, y, x)``: numpy array, memory map or :class:`isonet2core.io.mrcio.PlaneReader`
        (anything with ``shape`` whose ``volume[z0:z1]`` gives z planes).
    cube_size : int
        The training cube edge (tile size, voxels).
    config : PredictConfig
        Batch size, tiling, precision, ``apply_mw_x1``.
    microscope : Microscope
        The map's acquisition (tilt range for ``apply_mw_x1``, optics for ``phaseflip``).
    phaseflip : bool
        Phase flip the input first (:func:`input_needs_phaseflip`).
    device : str or torch.device
        Where the networks run.
    name : str
        Names the map in errors.
    model_source : str, optional
        The checkpoint's ``source`` (``"IsoNet2"``: the program's input filter conventions).

    Yields
    ------
    tiling.Planes
        ``(z0, planes)``: float32 ``(k, y, x)`` blocks in increasing z, every plane once; they
        belong to the caller.
    """
    config.validate()
    if not models:
        raise ValueError("predict_planes needs at least one network")
    if cube_size < SIZE_MULTIPLE or cube_size % SIZE_MULTIPLE:
        raise ValueError(f"cube_size must be a positive multiple of {SIZE_MULTIPLE}, got {cube_size}")
    if len(getattr(volume, "shape", ())) != 3:
        raise ValueError(f"{name}: expected a (z, y, x) volume, got shape {getattr(volume, 'shape', None)}")
    device = torch.device(device)
    mean, std = normalize.normalization_stats(volume, name=name)
    program = model_source == PROGRAM_SOURCE
    program_tiles = program and tiling.program_scheme_fits(cube_size, config.padding_factor)
    if program and not program_tiles:
        log.info("%s: the IsoNet2 program cannot tile cube %d at padding_factor %g; using our "
                 "tiling for its model", name, cube_size, config.padding_factor)
    grid = tiling.TileGrid.for_volume(volume.shape, cube_size, config.padding_factor,
                                      scheme="isonet2-program" if program_tiles else "hann")
    filt = _fourier_input_filter(cube_size, microscope, config.apply_mw_x1, phaseflip, device, program)
    amp = autocast_dtype(device, config.mixed_precision, config.amp_dtype, training=False)
    models = [m.to(device).eval() for m in models]
    calls = [compiled(m, config.compile_model) for m in models]
    # On the CPU the oneDNN convolutions run about 1.2x faster on channels-last weights
    # (bench/: unet-small and unet-medium, cube 48); the caller's layout is restored afterwards.
    channels_last = device.type == "cpu"
    acc = tiling.TileAccumulator(grid)
    log.info("%s: %s voxels, %d tiles of %d^3 (mean %.4g, std %.4g)", name, tuple(volume.shape),
             grid.n_tiles, cube_size, mean, std)

    def denormalized(planes: List[tiling.Planes]) -> List[tiling.Planes]:
        for _, block in planes:
            block *= np.float32(std)   # denormalize in place
            block += np.float32(mean)
        return planes

    try:
        if channels_last:
            for m in models:
                m.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        for tiles, starts in tiling.iter_tile_batches(volume, grid, config.batch_size):
            with torch.inference_mode():
                x = normalize.normalize(torch.from_numpy(tiles).to(device), mean, std)
                if filt is not None:
                    x = torch.fft.irfftn(torch.fft.rfftn(x, dim=(-3, -2, -1)) * filt,
                                         s=x.shape[-3:], dim=(-3, -2, -1))
                y = None
                for m in calls:
                    with torch.autocast(device_type=device.type, dtype=amp, enabled=amp is not None):
                        out = m(x[:, None])[:, 0].float()
                    y = out if y is None else y.add_(out)
                assert y is not None          # at least one network
                if len(models) > 1:
                    y.mul_(1.0 / len(models))
                outputs = y.cpu().numpy()
            yield from denormalized(acc.add(outputs, starts))
        yield from denormalized(acc.finish())
    finally:
        if channels_last:
            for m in models:
                m.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def predict_volume(model: nn.Module, volume, *, cube_size: int,
                   config: PredictConfig = PredictConfig(), microscope: Microscope,
                   phaseflip: bool = False, device: Union[str, torch.device] = "cpu",
                   name: str = "volume", model_source: Optional[str] = None) -> np.ndarray:
    """:func:`predict_planes` collected into one array. Memory: the output array plus what
    :func:`predict_planes` holds (a few slabs of ``cube_size`` planes and one batch).

    Parameters
    ----------
    model : nn.Module
        The network.
    volume : array_like
        ``(z, y, x)`` (numpy array, memory map or :class:`isonet2core.io.mrcio.PlaneReader`).
    cube_size : int
        Tile size (voxels).
    config : PredictConfig
        Batch size, tiling, precision, ``apply_mw_x1``.
    microscope : Microscope
        The map's acquisition (tilt range for ``apply_mw_x1``, optics for ``phaseflip``).
    phaseflip : bool
        Phase flip the input first (:func:`input_needs_phaseflip`).
    device : str or torch.device
        Where the networks run.
    name : str
        Names the map in errors.
    model_source : str, optional
        As in :func:`predict_planes`.

    Returns
    -------
    numpy.ndarray
        float32 ``(z, y, x)`` in the input's contrast and scale.
    """
    out = None   # allocated once predict_planes has checked the inputs
    with contextlib.closing(predict_planes([model], volume, cube_size=cube_size, config=config,
                                           microscope=microscope, phaseflip=phaseflip,
                                           device=device, name=name, model_source=model_source)) as planes:
        for z0, block in planes:
            if out is None:
                out = np.empty(volume.shape, dtype=np.float32)
            out[z0:z0 + len(block)] = block
    assert out is not None                   # predict_planes hands out every plane
    return out


def predict_file(models: Sequence[nn.Module], source: PathLike, target: PathLike, *,
                 cube_size: int, config: PredictConfig = PredictConfig(), microscope: Microscope,
                 phaseflip: bool = False, device: Union[str, torch.device] = "cpu",
                 voxel_size_a: Optional[float] = None, protect: Sequence[PathLike] = (),
                 model_source: Optional[str] = None) -> Path:
    """Predict an MRC map (:func:`predict_planes`) and stream the result into a float32 MRC file,
    atomically, never over the source or a protected path.

    The input is read with positioned reads, one slab of z planes per z-row of tiles, and the
    output written as its planes become final: memory does not grow with the number of z planes.

    Parameters
    ----------
    models : sequence of nn.Module
        As in :func:`predict_planes`.
    source : str or Path
        The input map.
    target : str or Path
        The output map.
    cube_size : int
        Tile size (voxels).
    config : PredictConfig
        Batch size, tiling, precision, ``apply_mw_x1``.
    microscope : Microscope
        The map's acquisition (tilt range for ``apply_mw_x1``, optics for ``phaseflip``).
    phaseflip : bool
        Phase flip the input first (:func:`input_needs_phaseflip`).
    device : str or torch.device
        Where the networks run.
    voxel_size_a : float, optional
        Header voxel size (Angstrom; default the source header's).
    protect : sequence of str or Path
        Paths the target must not be.
    model_source : str, optional
        As in :func:`predict_planes`.

    Returns
    -------
    Path
        ``Path(target)``.
    """
    reader = mrcio.open_planes(source)
    voxel = voxel_size_a if voxel_size_a is not None else reader.info.voxel_size_a
    with mrcio.stream_mrc(target, reader.shape, voxel, protect=[source, *protect]) as out, \
            contextlib.closing(predict_planes(models, reader, cube_size=cube_size, config=config,
                                              microscope=microscope, phaseflip=phaseflip,
                                              device=device, name=str(source),
                                              model_source=model_source)) as planes:
        for _, block in planes:
            out.write(block)
    return Path(target)


def _write_average(sources: Sequence[Path], target: Path, *, block_planes: int,
                   voxel_size_a: float, protect: Sequence[PathLike], weighted: bool = False) -> Path:
    """Stream the voxel-wise mean of the MRC maps ``sources`` (equal shapes) into ``target``,
    ``block_planes`` z planes at a time (float32, ``(a + b) / 2`` for two maps); with
    ``weighted``, FSC-weighted by the two maps' shell correlation (:mod:`.fsc_weighting`)."""
    readers = [mrcio.open_planes(p) for p in sources]
    shape = readers[0].shape
    with mrcio.stream_mrc(target, shape, voxel_size_a, protect=protect) as out:
        if weighted:
            freq, weights = fsc_weighting.half_map_weights(readers[0], readers[1], crop=fsc_weighting.FSC_CROP)
            log.info("%s: FSC weighting, shell weights %s at %s cycles/voxel", target.name,
                     " ".join(f"{w:.2f}" for w in np.interp([0.1, 0.2, 0.3, 0.4, 0.5], freq, weights)),
                     "0.1 0.2 0.3 0.4 0.5")
            for block in fsc_weighting.weighted_average_planes(readers, freq, weights, block_planes=block_planes,
                                                               margin=fsc_weighting.MARGIN_PLANES):
                out.write(block)
            return target
        for z0 in range(0, shape[0], block_planes):
            out.write(fsc_weighting.mean_planes(readers, z0, min(z0 + block_planes, shape[0])))
    return target


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
    model = loaded.network()
    model2 = None
    if model2_path is not None:
        twin = ModelFile.load(model2_path)
        twin.check_compatible(cube_size=loaded.cube_size, name=str(model2_path))
        if twin.method != loaded.method:
            raise ValueError(f"{model2_path} was trained with method {twin.method!r} but "
                             f"{model_path} with {loaded.method!r}; --model2 must be its split-halves twin")
        model2 = twin.network()
    elif loaded.split_halves:
        model2 = loaded.network(second=True)
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


def _check_outputs(table: star.TomogramsTable, jobs: Sequence[_Job], columns: Sequence[str],
                   models: Sequence[Optional[PathLike]]) -> None:
    """Before any work (:mod:`isonet2core.io.output_guard`): no output is a file of the table (any row,
    any column; a cell naming that very output excepted), a model file or the STAR; the folder
    accepts files, the STAR can be updated, the outputs fit in the free space."""
    targets, sizes, replaced = [], [], {}
    for j in jobs:
        for column, path in zip(columns, (j.output, *j.halves)):
            if path is not None:
                targets.append(path)
                sizes.append(mrc_bytes(j.shape))
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
    phaseflip = input_needs_phaseflip(loaded.config, config.is_ctf_flipped)
    if denoise and config.apply_mw_x1:
        log.info("denoise model: its inputs were never re-wedged, so apply_mw_x1 is not applied")
        config = dataclasses.replace(config, apply_mw_x1=False)
    output_dir = Path(output_dir)
    jobs = _plan(table, rows, n2n, input_column, output_dir, suffix, config.output_prefix, phaseflip)
    _check_outputs(table, jobs, columns, (model_path, model2_path))
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

            def run(nets: Sequence[nn.Module], source: Path, target: Path, job: _Job = job) -> Path:
                return predict_file(nets, source, target, cube_size=cube, config=config,
                                    microscope=job.microscope, phaseflip=phaseflip, device=device,
                                    model_source=loaded.source,
                                    voxel_size_a=job.voxel_size_a, protect=protect)

            half1, half2 = job.halves
            if half1 is not None and half2 is not None:
                written.append(run([model], job.inputs[0], half1))
                written.append(run([model2 if model2 is not None else model], job.inputs[1], half2))
                written.append(_write_average((half1, half2), job.output, block_planes=cube,
                                              voxel_size_a=job.voxel_size_a, protect=protect,
                                              weighted=config.fsc_weighting))
            else:
                written.append(run([model] if model2 is None else [model, model2], job.inputs[0], job.output))
            if config.save_slices:
                written += save_slices(job.output, job.voxel_size_a)
            star.update_rows(star_path, {(table.tomo_name(job.row), table.index(job.row)): dict(
                zip(columns, (job.output, *job.halves)))})
            log.info("%s: wrote %s in %.1f s", job.name, job.output, time.time() - t0)
    return written


def save_slices(map_path: Path, pixel_size_a: float) -> List[Path]:
    """The IsoNet2 program's ``save_slices``: ``<map stem>_slices.png`` (central orthoslices) and
    ``<map stem>_spectrum.png`` (central Fourier XZ slice) beside the map.

    Parameters
    ----------
    map_path : Path
        The map.
    pixel_size_a : float
        Angstrom per voxel (axes).

    Returns
    -------
    list of Path
        The two PNG files.
    """
    import matplotlib
    matplotlib.use("Agg")

    from isonet2core.report import figures
    volume = mrcio.read_mrc(map_path)[0]
    stem = map_path.stem
    return [figures.save_figure(figures.orthoslice_figure([(stem, volume)], pixel_size_a),
                                map_path.with_name(stem + "_slices.png")),
            figures.save_figure(figures.fourier_figure([(stem, figures.fourier_xz_slice(volume))],
                                                       pixel_size_a),
                                map_path.with_name(stem + "_spectrum.png"))]
