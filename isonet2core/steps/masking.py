"""Sampling masks of tomograms (IsoNet ``make_mask``): keep dense, structured regions.

``make_mask(volume, cfg)`` on a protein-dark ``(z, y, x)`` tomogram (best a deconvolved or
denoised one):

1. bin 2x (mean of 2x2x2 blocks; odd sizes padded by repeating the last slice);
2. smooth with a Gaussian of ``sigma = patch_size / 2`` binned voxels;
3. density: the local maximum of the *inverted* smoothed map (protein dark, so dense matter
   becomes high) over a cube of ``2 * patch_size + 1`` binned voxels; keep voxels in the top
   ``density_percentage`` percent;
4. structure: the local standard deviation of the smoothed map over the same cube; keep voxels
   in the top ``std_percentage`` percent;
5. combine: both criteria must hold (a percentage of 100 disables its criterion);
6. z crop: clear ``z_crop / 2`` of the binned thickness at the top and at the bottom (the
   empty ice/vacuum above and below the specimen, where missing-wedge streaks live);
7. upsample back to the input shape (each binned voxel covers its 2x2x2 block).

:func:`mask_star` then multiplies the mask of a STAR row naming an IMOD model in
``rlnMaskBoundary`` by the region the model outlines (:mod:`isonet2core.io.boundary`, the official
IsoNet2's rule).

The result is a uint8 ``(z, y, x)`` array of 0 (excluded) and 1 (sampled).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import scipy.ndimage as ndi

from isonet2core.config import MaskConfig
from isonet2core.io import boundary, mrcio, output_names, star
from isonet2core.io.output_names import PathLike
from isonet2core.steps import step_inputs

logger = logging.getLogger(__name__)


def bin2(volume: np.ndarray) -> np.ndarray:
    """Mean of 2x2x2 blocks of a volume.

    Parameters
    ----------
    volume : numpy.ndarray
        ``(z, y, x)``.

    Returns
    -------
    numpy.ndarray
        float32, ``ceil(n / 2)`` per axis.
    """
    v = np.asarray(volume, dtype=np.float32)
    pad = [(0, n % 2) for n in v.shape]
    if any(p for _, p in pad):
        v = np.pad(v, pad, mode="edge")
    nz, ny, nx = (n // 2 for n in v.shape)
    return v.reshape(nz, 2, ny, 2, nx, 2).mean(axis=(1, 3, 5), dtype=np.float32)


def local_std(volume: np.ndarray, size: int) -> np.ndarray:
    """Standard deviation over a cube around every voxel (reflect edges).

    Parameters
    ----------
    volume : numpy.ndarray
        ``(z, y, x)``.
    size : int
        Cube edge (voxels).

    Returns
    -------
    numpy.ndarray
        float32, shape of ``volume``.
    """
    v = np.asarray(volume, dtype=np.float64)
    mean = ndi.uniform_filter(v, size=size, mode="reflect")
    mean_sq = ndi.uniform_filter(v * v, size=size, mode="reflect")
    return np.sqrt(np.maximum(mean_sq - mean * mean, 0.0)).astype(np.float32)


def _top_percent(values: np.ndarray, percentage: float) -> np.ndarray:
    """Boolean mask of the voxels ranking in the top ``percentage`` percent of ``values``."""
    if percentage >= 100:
        return np.ones(values.shape, dtype=bool)
    threshold = np.percentile(values, 100.0 - percentage)
    return values >= threshold


def make_mask(volume: np.ndarray, cfg: MaskConfig = MaskConfig()) -> np.ndarray:
    """Sampling mask of a protein-dark tomogram (steps: module documentation).

    Parameters
    ----------
    volume : numpy.ndarray
        ``(z, y, x)``.
    cfg : MaskConfig
        Density and std percentages, z crop, patch size.

    Returns
    -------
    numpy.ndarray
        uint8 0/1, shape of ``volume``.

    Raises
    ------
    ValueError
        A volume that is not 3D, has fewer than 2 voxels along an axis, is not finite or is
        constant.
    """
    if not isinstance(cfg, MaskConfig):
        raise ValueError(f"expected a config.MaskConfig, got {type(cfg).__name__}")
    cfg.validate()
    v = np.asarray(volume)
    if v.ndim != 3 or min(v.shape) < 2:
        raise ValueError(f"expected a volume (z, y, x) of at least 2 voxels per axis, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("the volume to mask has NaN or infinite voxels")
    if float(v.max()) == float(v.min()):
        raise ValueError("the volume to mask is constant (no contrast)")

    binned = bin2(v)
    smooth = ndi.gaussian_filter(binned, sigma=cfg.patch_size / 2.0, mode="reflect")
    window = 2 * int(cfg.patch_size) + 1
    density = ndi.maximum_filter(-smooth, size=window, mode="reflect")
    keep = _top_percent(density, cfg.density_percentage)
    keep &= _top_percent(local_std(smooth, window), cfg.std_percentage)

    nzb = keep.shape[0]
    crop = z_crop_slices(nzb, cfg.z_crop)
    if crop > 0:
        keep[:crop] = False
        keep[nzb - crop:] = False

    full = np.repeat(np.repeat(np.repeat(keep, 2, axis=0), 2, axis=1), 2, axis=2)
    full = full[: v.shape[0], : v.shape[1], : v.shape[2]]
    logger.info("mask keeps %.1f%% of the volume", 100.0 * full.mean())
    return full.astype(np.uint8)


def z_crop_slices(nz_binned: int, z_crop: float) -> int:
    """Binned z slices cleared at the top and, as many, at the bottom.

    Parameters
    ----------
    nz_binned : int
        Thickness of the 2x binned volume (``ceil(nz / 2)``).
    z_crop : float
        Fraction of the thickness removed in total.

    Returns
    -------
    int
        ``round(z_crop / 2 * nz_binned)``.

    Raises
    ------
    ValueError
        When no slice would be left (the mask would be empty).
    """
    crop = int(round(z_crop / 2.0 * nz_binned))
    if 2 * crop >= nz_binned:
        raise ValueError(f"z_crop {z_crop} clears {crop} of {nz_binned} binned z slices at the top and "
                         f"{crop} at the bottom: the mask would be empty; use a smaller --z_crop")
    return crop


def mask_star(star_file: PathLike, cfg: MaskConfig, output_dir: PathLike, *,
              input_column: str = star.DECONV,
              tomo_idx: Optional[Sequence[int]] = None) -> List[Tuple[str, Path, float]]:
    """``make-mask``: the sampling mask (:func:`make_mask`) of every tomogram of a STAR file.

    Every input is checked before any work; after every tomogram its row of the STAR gets
    ``rlnMaskName`` (:func:`star.update_rows`: locked, re-read, written atomically). A row
    naming an IMOD model in ``rlnMaskBoundary`` keeps only the region the model outlines
    (:func:`isonet2core.io.boundary.boundary_of`).

    Parameters
    ----------
    star_file : path
        The tomograms STAR.
    cfg : MaskConfig
        Mask settings.
    output_dir : path
        Folder of ``<rlnTomoName>_mask.mrc`` (float32 0/1, ``(z, y, x)``).
    input_column : str
        STAR column of the maps; an empty cell falls back to rlnTomoReconstructedTomogram,
        then to the mean of the even/odd halves.
    tomo_idx : sequence of int, optional
        rlnIndex values of the tomograms; None: all.

    Returns
    -------
    list of (str, Path, float)
        rlnTomoName, the file written and the fraction of voxels kept, per tomogram.

    Raises
    ------
    ValueError, FileNotFoundError
        Naming the tomogram and the file: an input that cannot be used (a map, a mask
        boundary, a z crop that clears every slice), before any work.
    """
    cfg.validate()
    table = star.TomogramsTable.read(star_file)
    jobs = step_inputs.plan_map_jobs(table, tomo_idx, input_column,
                              lambda name: output_names.mask_path(output_dir, name),
                              star.MASK)
    pixel_size_a = {job.row: table.microscope(job.row).pixel_size_a for job in jobs}   # checked first
    for job in jobs:
        try:
            z_crop_slices(-(-job.infos[0].shape[0] // 2), cfg.z_crop)
        except ValueError as exc:
            raise ValueError(f"tomogram {job.name} ({job.sources[0]}): {exc}") from None
    boundaries = {job.row: table.path(job.row, star.MASK_BOUNDARY) if table.has_column(star.MASK_BOUNDARY)
                  else None for job in jobs}
    for job in jobs:   # checked first: a boundary that keeps nothing is refused before any work
        model = boundaries[job.row]
        if model is not None:
            try:
                boundary.boundary_of(model, job.infos[0].shape)
            except (ValueError, FileNotFoundError) as exc:
                raise type(exc)(f"tomogram {job.name}: {exc}") from None
    Path(output_dir).mkdir(parents=True, exist_ok=True)   # an unusable folder fails here, not after work
    done = []
    for job in jobs:
        mask = make_mask(step_inputs.read_map(job.sources), cfg)
        model = boundaries[job.row]
        if model is not None:
            mask *= boundary.boundary_of(model, mask.shape)
            logger.info("make-mask: %s: the region of %s kept", job.name, model)
            if not mask.any():
                raise ValueError(f"tomogram {job.name}: no voxel of the mask lies inside its mask "
                                 f"boundary {model} (rlnMaskBoundary)")
        mrcio.write_mrc(job.target, mask, pixel_size_a[job.row], protect=job.sources)
        star.update_rows(star_file, {(job.name, table.index(job.row)): {star.MASK: job.target}})
        done.append((job.name, job.target, float(mask.mean())))
        logger.info("make-mask: %s -> %s (%.1f%% kept)", job.name, job.target, 100.0 * done[-1][2])
    return done
