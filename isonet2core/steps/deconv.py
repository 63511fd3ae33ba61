"""CTF deconvolution of tomograms with the IsoNet1/Warp Wiener-like filter.

``deconvolve(volume, microscope, cfg)`` filters a ``(z, y, x)`` tomogram with
:func:`isonet2core.imaging.ctf.wiener_filter` (``W = T / (T^2 + 1/SSNR)``, the STAR's own amplitude
contrast, ``|T|`` for phase-flipped data) and rescales the result to the input's mean and
standard deviation. ``W`` is positive at low frequency, so the output keeps the input's
protein-dark contrast.

Whole-volume mode filters the volume with one FFT (periodic boundaries, as IsoNet1).
Chunked mode (``cfg.chunk_size``) tiles the volume into cubes of ``chunk_size`` voxels, each
filtered with a margin of ``round(chunk_size * overlap_rate / 2)`` voxels on every side (the
IsoNet1 crop size ``chunk_size * (1 + overlap_rate)``), taking the margin beyond the volume
edges periodically like the whole-volume FFT, and keeps only the chunk centres. The
mean/std rescaling is applied once to the stitched volume, so the two modes agree up to the
part of the filter's point-spread function that reaches beyond the margin (measured in
tests/core/test_deconv.py). ``cfg.ncpus`` sets torch's intra-op threads for the duration.
"""
from __future__ import annotations

import contextlib
import itertools
import logging
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from isonet2core.config import DeconvConfig, Microscope
from isonet2core.device import cpu_threads
from isonet2core.imaging import ctf, fourier
from isonet2core.io import mrcio, output_names, star
from isonet2core.io.output_names import PathLike
from isonet2core.steps import step_inputs

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(cpu_threads(max(1, int(n))))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Filter:
    """Applies the Wiener filter of one microscope to blocks, caching filters per shape."""

    def __init__(self, microscope: Microscope, cfg: DeconvConfig):
        self._microscope = microscope
        self._cfg = cfg
        self._cache: Dict[Tuple[int, int, int], torch.Tensor] = {}

    def __call__(self, block: np.ndarray) -> np.ndarray:
        nz, ny, nx = block.shape
        shape = (int(nz), int(ny), int(nx))
        if shape not in self._cache:
            self._cache[shape] = ctf.wiener_filter(
                shape, self._microscope, snrfalloff=self._cfg.snrfalloff,
                deconvstrength=self._cfg.deconvstrength, highpassnyquist=self._cfg.highpassnyquist,
                phaseflipped=self._cfg.phaseflipped, rfft=True, dtype=torch.float32)
        t = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))
        return fourier.apply_fourier_filter(t, self._cache[shape]).numpy()


def chunk_slices(shape: Sequence[int], chunk_size: int) -> List[Tuple[slice, slice, slice]]:
    """Core regions of the chunks: cubes of ``chunk_size`` tiling a volume (the last ones shorter).

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)``.
    chunk_size : int
        Chunk edge (voxels).

    Returns
    -------
    list of tuple of slice
        ``(z, y, x)`` slices.
    """
    per_axis = [[slice(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)] for n in shape]
    return [tuple(c) for c in itertools.product(*per_axis)]  # type: ignore[misc]


def _padded_block(volume: np.ndarray, core: Tuple[slice, ...], margin: int) -> np.ndarray:
    """The core region grown by ``margin`` on every side, wrapping around the volume edges."""
    index = [np.arange(s.start - margin, s.stop + margin) % n for s, n in zip(core, volume.shape)]
    return np.asarray(volume[np.ix_(*index)], dtype=np.float32)


def _check_inputs(volume, microscope: Microscope, cfg: DeconvConfig) -> None:
    if not isinstance(microscope, Microscope):
        raise ValueError(f"expected a config.Microscope, got {type(microscope).__name__}")
    microscope.validate()
    if not isinstance(cfg, DeconvConfig):
        raise ValueError(f"expected a config.DeconvConfig, got {type(cfg).__name__}")
    cfg.validate()
    if getattr(volume, "ndim", None) != 3:
        raise ValueError(f"expected a volume (z, y, x), got shape {getattr(volume, 'shape', None)}")


def deconvolve(volume: np.ndarray, microscope: Microscope,
               cfg: DeconvConfig = DeconvConfig()) -> np.ndarray:
    """Wiener-deconvolve a tomogram; the output keeps the input's mean and standard deviation and
    its protein-dark contrast.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(z, y, x)``, array or read-only memory map (chunked mode reads it chunk by chunk).
    microscope : Microscope
        Pixel size, defocus, voltage, Cs and amplitude contrast of the tomogram.
    cfg : DeconvConfig
        snrfalloff, deconvstrength, highpassnyquist, phaseflipped, chunk_size, overlap_rate,
        ncpus.

    Returns
    -------
    numpy.ndarray
        float32 ``(z, y, x)``.

    Raises
    ------
    ValueError
        A non-3D, non-finite or constant volume.
    """
    _check_inputs(volume, microscope, cfg)
    mean = float(np.mean(volume, dtype=np.float64))
    std = float(np.std(volume, dtype=np.float64))
    if not np.isfinite(mean) or not np.isfinite(std):
        raise ValueError("the volume to deconvolve has NaN or infinite voxels")
    if std == 0:
        raise ValueError("the volume to deconvolve is constant (no contrast)")
    apply = _Filter(microscope, cfg)
    with _torch_threads(cfg.ncpus):
        if cfg.chunk_size is None or all(n <= cfg.chunk_size for n in volume.shape):
            out = apply(np.asarray(volume, dtype=np.float32))
        else:
            margin = int(round(cfg.chunk_size * cfg.overlap_rate / 2))
            out = np.empty(volume.shape, dtype=np.float32)
            cores = chunk_slices(volume.shape, cfg.chunk_size)
            logger.info("deconvolving %d chunks of %d voxels (margin %d)", len(cores),
                        cfg.chunk_size, margin)
            for core in cores:
                filtered = apply(_padded_block(volume, core, margin))
                inner = tuple(slice(margin, margin + (s.stop - s.start)) for s in core)
                out[core] = filtered[inner]
    out_mean = float(np.mean(out, dtype=np.float64))
    out_std = float(np.std(out, dtype=np.float64))
    if out_std == 0:
        raise ValueError("deconvolution removed all contrast (check the CTF parameters)")
    out -= np.float32(out_mean)
    out *= np.float32(std / out_std)
    out += np.float32(mean)
    return out


def deconvolve_star(star_file: PathLike, cfg: DeconvConfig, output_dir: PathLike, *,
                    input_column: str = star.TOMO_NAME,
                    tomo_idx: Optional[Sequence[int]] = None) -> List[Tuple[str, Path]]:
    """``deconv``: deconvolve the tomograms of a STAR file with their microscope parameters.

    Every input is checked before the first FFT; after every tomogram its row of the STAR gets
    ``rlnDeconvTomoName`` and the settings in ``rlnSnrFalloff`` / ``rlnDeconvStrength``
    (:func:`star.update_rows`: locked, re-read, written atomically).

    Parameters
    ----------
    star_file : path
        The tomograms STAR.
    cfg : DeconvConfig
        Filter settings.
    output_dir : path
        Folder of ``<rlnTomoName>_deconv.mrc``.
    input_column : str
        STAR column of the maps; ``rlnTomoName``: the tomogram, else the mean of its halves.
    tomo_idx : sequence of int, optional
        rlnIndex values of the tomograms; None: all.

    Returns
    -------
    list of (str, Path)
        rlnTomoName and the file written, per tomogram.
    """
    cfg.validate()
    table = star.TomogramsTable.read(star_file)
    jobs = step_inputs.plan_map_jobs(table, tomo_idx, input_column,
                              lambda name: output_names.deconv_path(output_dir, name),
                              star.DECONV)
    microscopes = {job.row: table.microscope(job.row, needs_defocus="deconv") for job in jobs}  # first
    for job in jobs:
        px, header = microscopes[job.row].pixel_size_a, job.infos[0].voxel_size_a
        if header > 0 and abs(header - px) > 0.01 * px:
            logger.warning("%s: header voxel size %.4g A differs from the STAR pixel size %.4g A; "
                           "using the STAR's", job.sources[0], header, px)
    Path(output_dir).mkdir(parents=True, exist_ok=True)   # an unusable folder fails here, not after work
    for job in jobs:
        microscope = microscopes[job.row]
        out = deconvolve(step_inputs.read_map(job.sources), microscope, cfg)
        mrcio.write_mrc(job.target, out, microscope.pixel_size_a, protect=job.sources)
        star.update_rows(star_file, {(job.name, table.index(job.row)): {
            star.DECONV: job.target, star.SNR_FALLOFF: cfg.snrfalloff,
            star.DECONV_STRENGTH: cfg.deconvstrength}})
        logger.info("deconv: %s -> %s", job.name, job.target)
    return [(job.name, job.target) for job in jobs]
