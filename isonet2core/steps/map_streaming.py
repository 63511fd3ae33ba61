"""Predicting MRC files: a map (or the voxel-wise mean of maps, :class:`MeanOfMaps`) streamed
through :func:`isonet2core.steps.inference.predict_blocks` into an output file, and the
(FSC-weighted) average of written maps, plane block by plane block.

``predict_file`` reads its input with positioned reads (``mrcio.open_planes``) and writes the
planes as they become final (``mrcio.stream_mrc``: atomically, never over the source or a
protected path): its peak is the model, one batch of tiles with their activations and a few
slabs of ``cube_size`` z planes, of one y band's rows where whole planes would exceed the
budget (plus the normalisation's and the input check's reads, each capped at a fixed size).
"""
from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import nn

from isonet2core.config import Microscope, PredictConfig
from isonet2core.imaging import fsc_weighting
from isonet2core.io import mrcio
from isonet2core.io.output_names import PathLike
from isonet2core.steps import tiling
from isonet2core.steps.inference import predict_blocks

log = logging.getLogger(__name__)


class MeanOfMaps:
    """The voxel-wise mean of MRC maps of one shape, read like a
    :class:`~isonet2core.io.mrcio.PlaneReader`: ``reader[z0:z1]`` (or ``reader[z0:z1, y0:y1]``)
    reads those planes (rows) of every map and returns their float32 mean; nothing stays in
    memory between reads. ``shape`` is ``(z, y, x)``, ``info`` the first map's header.

    Raises ``ValueError`` naming the maps when their shapes differ.
    """
    ndim = 3
    dtype = np.dtype(np.float32)

    def __init__(self, paths: Sequence[PathLike]):
        self.readers = [mrcio.open_planes(p) for p in paths]
        if not self.readers:
            raise ValueError("MeanOfMaps needs at least one map")
        shapes = {tuple(r.shape) for r in self.readers}
        if len(shapes) != 1:
            raise ValueError("maps to average differ in shape: " + ", ".join(
                f"{r.path} {tuple(r.shape)}" for r in self.readers))
        self.info = self.readers[0].info
        self.shape = tuple(self.readers[0].shape)
        self.path = " + ".join(str(r.path) for r in self.readers)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        mean = np.array(self.readers[0][index], dtype=np.float32)
        for reader in self.readers[1:]:
            mean += reader[index]
        mean /= np.float32(len(self.readers))
        return mean


def predict_file(models: Sequence[nn.Module], source: Union[PathLike, Sequence[PathLike]], target: PathLike, *,
                 cube_size: int, config: PredictConfig = PredictConfig(), microscope: Microscope,
                 phaseflip: bool = False, device: Union[str, torch.device] = "cpu",
                 voxel_size_a: Optional[float] = None, protect: Sequence[PathLike] = (),
                 model_source: Optional[str] = None,
                 bands: Optional[Sequence[tiling.Rows]] = None) -> Path:
    """Predict an MRC map (:func:`predict_blocks`) and stream the result into a float32 MRC file,
    atomically, never over the source or a protected path.

    The input is read with positioned reads, one slab of z planes (of a band's rows) per z-row
    of tiles, and the output written where each block belongs as it becomes final: memory does
    not grow with the number of z planes, nor, in bands, with the size of the planes.

    Parameters
    ----------
    models, cube_size, config, microscope, phaseflip, device, model_source, bands
        As in :func:`~isonet2core.steps.inference.predict_blocks`.
    source : str or Path, or a sequence of them
        The input map; several maps of one shape: their voxel-wise mean (:class:`MeanOfMaps`).
    target : str or Path
        The output map.
    voxel_size_a : float, optional
        Header voxel size (Angstrom; default the (first) source header's).
    protect : sequence of str or Path
        Paths the target must not be.

    Returns
    -------
    Path
        ``Path(target)``.
    """
    sources: List[PathLike] = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    reader = mrcio.open_planes(sources[0]) if len(sources) == 1 else MeanOfMaps(sources)
    voxel = voxel_size_a if voxel_size_a is not None else reader.info.voxel_size_a
    with mrcio.stream_mrc(target, reader.shape, voxel, protect=[*sources, *protect]) as out, \
            contextlib.closing(predict_blocks(models, reader, cube_size=cube_size, config=config,
                                              microscope=microscope, phaseflip=phaseflip,
                                              device=device, name=str(reader.path),
                                              model_source=model_source, bands=bands)) as blocks:
        for z0, y0, block in blocks:
            out.write_block(z0, y0, block)
    return Path(target)


def write_average(sources: Sequence[Path], target: Path, *, block_planes: int,
                  voxel_size_a: float, protect: Sequence[PathLike],
                  weights_from: Optional[Tuple[Path, Path]] = None) -> Path:
    """Stream the voxel-wise mean of MRC maps of equal shapes (one map: the map itself) into an
    MRC file, a block of z planes at a time.

    Parameters
    ----------
    sources : sequence of Path
        The maps (``(z, y, x)``, equal shapes).
    target : Path
        The output map (float32), written atomically.
    block_planes : int
        z planes per block (the plain average: at most, within ``AVERAGE_VOXELS``,
        :func:`average_blocks`).
    voxel_size_a : float
        Header voxel size (Angstrom).
    protect : sequence of str or Path
        Paths the target must not be.
    weights_from : pair of Path, optional
        Two half predictions: FSC-weight the mean by their shell correlation
        (:mod:`isonet2core.imaging.fsc_weighting`); None: the plain mean.

    Returns
    -------
    Path
        ``target``.
    """
    readers = [mrcio.open_planes(p) for p in sources]
    shape = readers[0].shape
    with mrcio.stream_mrc(target, shape, voxel_size_a, protect=protect) as out:
        if weights_from is not None:
            halves = [mrcio.open_planes(p) for p in weights_from]
            freq, weights = fsc_weighting.half_map_weights(halves[0], halves[1], crop=fsc_weighting.FSC_CROP)
            log.info("%s: FSC weighting, shell weights %s at %s cycles/voxel", target.name,
                     " ".join(f"{w:.2f}" for w in np.interp([0.1, 0.2, 0.3, 0.4, 0.5], freq, weights)),
                     "0.1 0.2 0.3 0.4 0.5")
            for block in fsc_weighting.weighted_average_planes(readers, freq, weights, block_planes=block_planes):
                out.write(block)
            return target
        for z0, z1, y0, y1 in average_blocks(shape, block_planes):
            out.write_block(z0, y0, fsc_weighting.mean_planes(readers, z0, z1, y0, y1))
    return target


AVERAGE_VOXELS = 4 * 1024 * 1024
"""Voxels per block of the plain average of the halves (each read and the sum: 16 MiB)."""


def average_blocks(shape: Sequence[int], block_planes: int) -> Iterator[Tuple[int, int, int, int]]:
    """The blocks the plain average is computed in: at most ``block_planes`` z planes and
    ``AVERAGE_VOXELS`` voxels; rows of one plane where a plane alone holds more.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)``.
    block_planes : int
        The most z planes per block.

    Yields
    ------
    tuple of int
        ``(z0, z1, y0, y1)`` covering the volume, z slowest.
    """
    nz, ny, nx = (int(n) for n in shape)
    if ny * nx <= AVERAGE_VOXELS:
        k = max(1, min(block_planes, AVERAGE_VOXELS // (ny * nx)))
        for z0 in range(0, nz, k):
            yield z0, min(z0 + k, nz), 0, ny
        return
    rows = max(1, AVERAGE_VOXELS // nx)
    for z0 in range(nz):
        for y0 in range(0, ny, rows):
            yield z0, z0 + 1, y0, min(y0 + rows, ny)
