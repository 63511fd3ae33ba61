"""Applying a network to one ``(z, y, x)`` map in memory-bounded tensor work: normalisation, input
filters, batched inference and blended stitching (no files; :mod:`.map_streaming` streams
MRC files through it, :mod:`.predict` applies a model file to a STAR file).

``predict_blocks`` runs a model over one ``(z, y, x)`` map, tile by tile (``tiling.py``), and
hands out the result block by block of z planes:

1. **Normalisation** exactly as in training: ``normalize.normalization_stats`` of the map being
   predicted (its central slices; the even and odd halves each with their own statistics),
   ``(tile - mean) / std``.
2. **Input filters** on each tile, in Fourier space, in one multiplication: the missing-wedge
   mask of the tomogram's tilt range (``apply_mw_x1``, as the training inputs were re-wedged;
   ``wedge.wedge_mask``) and, when the model was trained on phase-flipped inputs
   (:meth:`isonet2core.io.model_file.ModelFile.flips_input`), the phase flip ``sign(CTF)`` of the tomogram's microscope
   (``ctf.ctf_sign``), unless the tomograms are already phase flipped (``--isCTFflipped``).
3. **Network** on batches of ``batch_size`` tiles under ``torch.inference_mode``, with the
   autocast of :func:`isonet2core.device.autocast_dtype` (by default when ``mixed_precision``:
   CUDA float16, a CPU with native bfloat16 bfloat16, other CPUs float32), through
   ``torch.compile`` when ``compile_model``. A device that runs out of memory halves the tiles
   per call for the rest of the map (:func:`run_in_parts`): a card smaller than the batch
   predicts more slowly instead of failing.
4. **Stitching** with smooth Hann blending, then ``normalize.denormalize`` with the same mean
   and std: the output keeps the input's contrast (protein dark) and scale.

Memory does not grow with the number of z planes: the map is read one slab of z planes per
z-row of tiles, the outputs are blended in a rolling buffer of the planes one z-row covers, and
finished planes leave it at once (``tiling.py``): the peak is the model and one batch of tiles
with their activations, plus a few slabs of ``cube_size`` planes ``(cube_size, y, x)`` float32.
Nor with the size of the planes: where those slabs would exceed the budget
(:func:`isonet2core.steps.tiling.plan_bands`), the map is predicted in y bands of rows, one
after the other, each from the tiles that touch it (the same voxels as whole planes give).
``predict_volume`` collects the planes into one float32 array (for callers that want the array:
the trainer's previews, tests, benchmarks).
"""
from __future__ import annotations

import contextlib
import logging
from typing import Callable, Generator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from isonet2core.config import Microscope, PredictConfig
from isonet2core.device import autocast_dtype, is_out_of_memory
from isonet2core.imaging import ctf, fourier, normalize, wedge
from isonet2core.io.model_file import PROGRAM_SOURCE
from isonet2core.nets.unet import SIZE_MULTIPLE, compiled
from isonet2core.steps import tiling

log = logging.getLogger(__name__)


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


def tile_grid(shape: Sequence[int], cube_size: int, config: PredictConfig = PredictConfig(),
              model_source: Optional[str] = None, name: str = "volume") -> tiling.TileGrid:
    """The tiles a map is predicted with: the ``hann`` scheme, or for models of the IsoNet2
    program (``model_source``) its own where it can tile ``cube_size`` at ``padding_factor``.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the map.
    cube_size : int
        Tile edge (voxels).
    config : PredictConfig
        ``padding_factor``.
    model_source : str, optional
        The checkpoint's ``source``.
    name : str
        Names the map in the log.

    Returns
    -------
    tiling.TileGrid
        The grid.
    """
    program = model_source == PROGRAM_SOURCE
    program_tiles = program and tiling.program_scheme_fits(cube_size, config.padding_factor)
    if program and not program_tiles:
        log.info("%s: the IsoNet2 program cannot tile cube %d at padding_factor %g; using our "
                 "tiling for its model", name, cube_size, config.padding_factor)
    return tiling.TileGrid.for_volume(shape, cube_size, config.padding_factor,
                                      scheme="isonet2-program" if program_tiles else "hann")


Block = Tuple[int, int, np.ndarray]
"""``(z0, y0, block)``: float32 ``(k, h, x)``, the output's z planes ``z0 .. z0 + k - 1``, rows
``y0 .. y0 + h - 1``."""


def predict_blocks(models: Sequence[nn.Module], volume, *, cube_size: int,
                   config: PredictConfig = PredictConfig(), microscope: Microscope,
                   phaseflip: bool = False, device: Union[str, torch.device] = "cpu",
                   name: str = "volume", model_source: Optional[str] = None,
                   bands: Optional[Sequence[tiling.Rows]] = None) -> Generator[Block, None, None]:
    """Apply networks to a map of any shape, streaming the result by blocks of z planes (of one
    y band at a time where the map's planes are too large for whole ones), in the input's
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
        Phase flip the input first (:meth:`isonet2core.io.model_file.ModelFile.flips_input`).
    device : str or torch.device
        Where the networks run.
    name : str
        Names the map in errors.
    model_source : str, optional
        The checkpoint's ``source`` (``"IsoNet2"``: the program's input filter conventions).
    bands : sequence of tuple of int, optional
        ``(y0, y1)`` bands of output rows, in order, covering every row
        (:func:`isonet2core.steps.tiling.plan_bands` of :func:`tile_grid`, planned within the
        caller's memory budget); None: planned here within ``tiling.BAND_BYTES``.

    Yields
    ------
    Block
        ``(z0, y0, block)``: band by band, blocks of increasing z, every voxel once; they
        belong to the caller.
    """
    config.validate()
    if not models:
        raise ValueError("predict_blocks needs at least one network")
    if cube_size < SIZE_MULTIPLE or cube_size % SIZE_MULTIPLE:
        raise ValueError(f"cube_size must be a positive multiple of {SIZE_MULTIPLE}, got {cube_size}")
    if len(getattr(volume, "shape", ())) != 3:
        raise ValueError(f"{name}: expected a (z, y, x) volume, got shape {getattr(volume, 'shape', None)}")
    device = torch.device(device)
    grid = tile_grid(volume.shape, cube_size, config, model_source, name)
    bands = tiling.plan_bands(grid, name=name) if bands is None else list(bands)
    edges = [b for band in bands for b in band]
    if not bands or edges[0] != 0 or edges[-1] != grid.shape[1] or edges[1:-1:2] != edges[2:-1:2]:
        raise ValueError(f"{name}: bands {bands} do not cover its {grid.shape[1]} rows in order")
    mean, std = normalize.normalization_stats(volume, name=name)
    filt = _fourier_input_filter(cube_size, microscope, config.apply_mw_x1, phaseflip, device,
                                 model_source == PROGRAM_SOURCE)
    amp = autocast_dtype(device, config.mixed_precision, config.amp_dtype, training=False)
    models = [m.to(device).eval() for m in models]
    calls = [compiled(m, config.compile_model) for m in models]
    # On the CPU the oneDNN convolutions run about 1.2x faster on channels-last weights
    # (bench/: unet-small and unet-medium, cube 48); the caller's layout is restored afterwards.
    channels_last = device.type == "cpu"
    log.info("%s: %s voxels, %d tiles of %d^3 (mean %.4g, std %.4g)%s", name, tuple(volume.shape),
             grid.n_tiles, cube_size, mean, std,
             f", in {len(bands)} bands of rows" if len(bands) > 1 else "")

    def denormalized(planes: List[tiling.Planes], y0: int) -> List[Block]:
        for _, block in planes:
            block *= np.float32(std)   # denormalize in place
            block += np.float32(mean)
        return [(z0, y0, block) for z0, block in planes]

    try:
        if channels_last:
            for m in models:
                m.to(memory_format=torch.channels_last_3d)  # type: ignore[call-overload]
        def network(tiles: torch.Tensor) -> torch.Tensor:
            """The networks' mean output for raw tiles ``(b, n, n, n)`` (host), normalised and
            filtered on the device here, so that a part that does not fit is halved whole."""
            x = torch.as_tensor(normalize.normalize(tiles.to(device), mean, std))
            if filt is not None:
                x = torch.fft.irfftn(torch.fft.rfftn(x, dim=(-3, -2, -1)) * filt,
                                     s=x.shape[-3:], dim=(-3, -2, -1))
            y = None
            for m in calls:
                with torch.autocast(device_type=device.type, dtype=amp, enabled=amp is not None):
                    out = m(x[:, None])[:, 0].float()
                y = out if y is None else y.add_(out)
            assert y is not None          # at least one network
            return y.mul_(1.0 / len(models)) if len(models) > 1 else y

        fits = config.batch_size      # lowered for the rest of the map when the device runs out
        for rows in bands:
            acc = tiling.TileAccumulator(grid, rows)
            for tiles, starts in tiling.iter_tile_batches(volume, grid, config.batch_size, rows):
                with torch.inference_mode():
                    outputs, fits = run_in_parts(network, torch.from_numpy(tiles), fits, name)
                yield from denormalized(acc.add(outputs, starts), rows[0])
            yield from denormalized(acc.finish(), rows[0])
    finally:
        if channels_last:
            for m in models:
                m.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]


def run_in_parts(network: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, fits: int,
                 name: str = "volume") -> Tuple[np.ndarray, int]:
    """Apply ``network`` to a batch of tiles in parts of at most ``fits`` tiles, halving the part
    whenever the device runs out of memory, so that a card smaller than the batch assumes still
    predicts (more slowly) instead of failing.

    Parameters
    ----------
    network : callable
        Tiles ``(b, n, n, n)`` to outputs of the same shape (on the device; an out-of-memory
        error there, :func:`isonet2core.device.is_out_of_memory`, halves the part).
    x : torch.Tensor
        The batch ``(b, n, n, n)`` (on the host).
    fits : int
        Tiles per network call known to fit (at most the batch size).
    name : str
        Names the map in the error.

    Returns
    -------
    tuple of (numpy.ndarray, int)
        The outputs ``(b, n, n, n)`` float32 on the host, and the part size that fitted (for the
        next batches).

    Raises
    ------
    RuntimeError
        Naming the map and the tile size when even one tile does not fit.
    """
    parts: List[np.ndarray] = []
    i = 0
    while i < len(x):
        k = min(fits, len(x) - i)
        try:
            parts.append(network(x[i:i + k]).cpu().numpy())
            i += k
            continue
        except RuntimeError as exc:
            if not is_out_of_memory(exc):
                raise
            if k == 1:
                raise RuntimeError(f"{name}: the device ran out of memory on one tile of {tuple(x.shape[1:])} "
                                   "voxels; use a smaller model or another device") from exc
        fits = max(1, k // 2)          # out of the except block: its traceback no longer holds the call's tensors
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        log.warning("%s: the device ran out of memory with %d tiles per call; going on with %d",
                    name, k, fits)
    return (parts[0] if len(parts) == 1 else np.concatenate(parts)), fits


def predict_volume(model: nn.Module, volume, *, cube_size: int,
                   config: PredictConfig = PredictConfig(), microscope: Microscope,
                   phaseflip: bool = False, device: Union[str, torch.device] = "cpu",
                   name: str = "volume", model_source: Optional[str] = None) -> np.ndarray:
    """:func:`predict_blocks` collected into one array. Memory: the output array plus what
    :func:`predict_blocks` holds (a few slabs of ``cube_size`` planes and one batch).

    Parameters
    ----------
    model : nn.Module
        The network.
    volume, cube_size, config, microscope, phaseflip, device, name, model_source
        As in :func:`predict_blocks`.

    Returns
    -------
    numpy.ndarray
        float32 ``(z, y, x)`` in the input's contrast and scale.
    """
    out = None   # allocated once predict_blocks has checked the inputs
    with contextlib.closing(predict_blocks([model], volume, cube_size=cube_size, config=config,
                                           microscope=microscope, phaseflip=phaseflip,
                                           device=device, name=name, model_source=model_source)) as blocks:
        for z0, y0, block in blocks:
            if out is None:
                out = np.empty(volume.shape, dtype=np.float32)
            out[z0:z0 + block.shape[0], y0:y0 + block.shape[1]] = block
    assert out is not None                   # predict_blocks hands out every voxel
    return out
