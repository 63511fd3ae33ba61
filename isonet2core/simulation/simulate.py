"""Synthetic cryo-ET tomograms with ground truth: phantom, tilt series, CTF, noise, WBP.

One simulated tomogram is made in four steps, all deterministic for a given seed:

1. **Phantom** (the ground truth, ``(z, y, x)`` float32, *protein dark*: specimen density
   negative, solvent exactly 0): solid blobs and randomly oriented ellipsoids of several
   sizes, thin membrane shells (vesicles) and a few straight filaments, all inside a slab of
   ``slab_fraction * nz`` slices centred in z (zero outside the slab), smoothed with a
   Gaussian of ``smooth_sigma_vox`` voxels. Overlapping objects keep the denser value.
2. **Projection** at each tilt angle ``theta`` (tilt axis y, project-wide convention): the
   beam runs along ``(z, x) = (cos theta, -sin theta)``; the detector coordinate is
   ``u = z sin theta + x cos theta`` (voxel centres relative to the volume centre), so by the
   central-slice theorem tilt ``theta`` fills the Fourier plane containing ``ky`` and the
   direction ``(kz, kx) = (sin theta, cos theta)``, exactly the region that
   :func:`isonet2core.imaging.wedge.wedge_mask` calls measured. Each y slice is a 2D problem, so the
   projector is one sparse matrix (linear interpolation in u) applied to all y at once; the
   detector is wide enough to catch the whole box at every tilt (no truncation).
3. **CTF and noise**: every tilt image ``(y, u)`` is multiplied in 2D Fourier space by the
   isotropic CTF of :func:`isonet2core.imaging.ctf.ctf_3d` (protein-dark convention, ``T(0) = A``),
   at the nominal defocus (no defocus gradient), then white Gaussian noise is added. Noise is
   independent for every tilt; its variance follows a fixed total dose: with ``dose_snr`` the
   signal-to-noise variance ratio of the whole tilt series, each tilt image has
   ``snr_per_tilt = dose_snr / n_tilts`` (signal variance measured on the noise-free
   CTF-modulated images over the camera field of view, the central ``nx`` detector columns).
4. **Weighted back-projection** (Ram-Lak ramp along u, zero padded; angular weight
   ``2 * step`` in radians for each tilt of a half): ``even`` uses the tilts of even index
   (0, 2, 4, ... in ascending angle order), ``odd`` those of odd index, and
   ``full = (even + odd) / 2``, which equals the WBP of all tilts with weight ``step``; all
   three have the scale of a plain WBP of the complete series.

Measured (2 CPU cores, default config 64 x 192 x 192, 41 tilts): 0.7 s per tomogram on idle
cores, 1.7-2.1 s while other jobs share them; the raw full map correlates with the ground truth at about 0.32, the even and odd
halves at about 0.24, and 3 % of the full map's non-DC Fourier power lies in the missing wedge
(38 % of the ground truth's).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt
import scipy.ndimage
import scipy.sparse

from isonet2core.config import check_tilt_range
from isonet2core.io import atomic
from isonet2core.io.output_names import PathLike
from isonet2core.memory import available_memory_bytes, format_bytes

logger = logging.getLogger(__name__)


#: folder names written by :func:`simulate_dataset` (one MRC per tomogram in each)
VOLUME_FOLDERS: Tuple[str, ...] = ("full", "even", "odd", "ground_truth")
CTF_FOLDER = "ctf"
TILT_FOLDER = "tilt"
ACQUISITION_FILE = "acquisition.json"

# auto object counts are given for a 192 x 192 slab area and scale with ny * nx
_REFERENCE_AREA = 192.0 * 192.0
_AUTO_PARTICLES = 200
_AUTO_VESICLES = 5
_AUTO_FILAMENTS = 4


@dataclass(frozen=True)
class SimulationConfig:
    """Settings of the simulator (units in the names; defocus underfocus positive).

    ``dose_snr``: signal-to-noise *variance* ratio of the whole tilt series (total dose);
    each of the ``n`` tilt images gets ``dose_snr / n``. ``None`` simulates noise-free data.
    The default gives raw even/odd halves that correlate with the ground truth at about 0.3.
    ``n_particles`` / ``n_vesicles`` / ``n_filaments``: ``None`` = automatic, scaled with the
    slab area (200 / 5 / 4 for 192 x 192). ``defocus_step_a``: tomogram ``i`` of a data set
    (0-based) is simulated at ``defocus_a + i * defocus_step_a``. Tomogram ``i`` uses the
    seed ``seed + i``.
    """
    shape: Tuple[int, int, int] = (64, 192, 192)
    pixel_size_a: float = 10.0
    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0
    tilt_step_deg: float = 3.0
    defocus_a: float = 50000.0      # first CTF zero at 1/31.9 A = 0.63 Nyquist at 10 A/pixel
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    dose_snr: Optional[float] = 30.0
    slab_fraction: float = 0.6
    n_particles: Optional[int] = None
    n_vesicles: Optional[int] = None
    n_filaments: Optional[int] = None
    smooth_sigma_vox: float = 0.7
    defocus_step_a: float = 0.0
    seed: int = 0

    def validate(self) -> SimulationConfig:
        """Check the values.

        Returns
        -------
        SimulationConfig
            ``self``, when every value is usable.

        Raises
        ------
        ValueError
            Naming the setting.
        """
        shape = tuple(self.shape)
        if len(shape) != 3 or any(int(s) != s or s < 16 for s in shape):
            raise ValueError(f"shape must be three integers (z, y, x) of at least 16, got {self.shape}")
        if not self.pixel_size_a > 0:
            raise ValueError(f"pixel_size must be positive, got {self.pixel_size_a} A")
        check_tilt_range(self.tilt_min_deg, self.tilt_max_deg)
        if not self.tilt_step_deg > 0:
            raise ValueError(f"tilt_step must be positive, got {self.tilt_step_deg} degrees")
        if len(tilt_angles(self)) < 4:
            raise ValueError(f"tilt range ({self.tilt_min_deg}, {self.tilt_max_deg}) with step "
                             f"{self.tilt_step_deg} gives fewer than 4 tilts (2 per half needed)")
        if not self.defocus_a >= 0:
            raise ValueError(f"defocus must not be negative, got {self.defocus_a} A (underfocus is positive)")
        if not self.voltage_kv > 0:
            raise ValueError(f"voltage must be positive, got {self.voltage_kv} kV")
        if not self.cs_mm >= 0:
            raise ValueError(f"cs must not be negative, got {self.cs_mm} mm")
        if not 0.0 <= self.amplitude_contrast < 1.0:
            raise ValueError(f"amplitude contrast must be in [0, 1), got {self.amplitude_contrast}")
        if self.dose_snr is not None and not self.dose_snr > 0:
            raise ValueError(f"dose_snr must be positive or None (noise-free), got {self.dose_snr}")
        if not 0.2 <= self.slab_fraction <= 1.0:
            raise ValueError(f"slab_fraction must be in [0.2, 1], got {self.slab_fraction}")
        for name in ("n_particles", "n_vesicles", "n_filaments"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 0):
                raise ValueError(f"{name} must be a non-negative integer or None (auto), got {value}")
        if not self.smooth_sigma_vox >= 0:
            raise ValueError(f"smooth_sigma_vox must not be negative, got {self.smooth_sigma_vox}")
        if self.defocus_a + self.defocus_step_a < 0:
            raise ValueError(f"defocus_step ({self.defocus_step_a} A) makes the defocus negative")
        if int(self.seed) != self.seed or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        return self


BYTES_PER_VOXEL = 80
"""Peak memory of one simulated tomogram per voxel, rounded up (measured: about 70 bytes at
64x256x256 and 20 more per added voxel at 128x256x256, blob and lamella phantoms alike)."""


def check_memory(shape: Sequence[int]) -> None:
    """Refuse, before any work, a tomogram this machine cannot hold while it is simulated.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` voxels.

    Raises
    ------
    MemoryError
        Naming the shape, the memory it needs (:data:`BYTES_PER_VOXEL`) and what is available.
    """
    need = BYTES_PER_VOXEL * float(np.prod([float(s) for s in shape]))
    available = available_memory_bytes()
    if available is not None and need > available:
        raise MemoryError(f"simulating a {'x'.join(str(int(s)) for s in shape)} tomogram needs about "
                          f"{format_bytes(need)} of memory, {format_bytes(available)} is available; "
                          "choose a smaller --shape")


def tilt_angles(cfg: SimulationConfig) -> np.ndarray:
    """The tilt angles of a simulation.

    Parameters
    ----------
    cfg : SimulationConfig
        Its tilt range and step.

    Returns
    -------
    numpy.ndarray
        float64 degrees, ascending: ``tilt_min, tilt_min + step, ...`` up to ``tilt_max``.
    """
    n = int(math.floor((cfg.tilt_max_deg - cfg.tilt_min_deg) / cfg.tilt_step_deg + 1e-6)) + 1
    return cfg.tilt_min_deg + cfg.tilt_step_deg * np.arange(n, dtype=np.float64)


def slab_bounds(shape: Sequence[int], slab_fraction: float) -> Tuple[int, int]:
    """The z slices of the specimen slab, centred in z.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    slab_fraction : float
        Slab thickness as a fraction of ``z``.

    Returns
    -------
    tuple of int
        ``(z0, z1)``: the slab is ``z0 <= z < z1``.
    """
    nz = int(shape[0])
    thickness = max(4, min(nz, int(round(slab_fraction * nz))))
    z0 = (nz - thickness) // 2
    return z0, z0 + thickness


# --------------------------------------------------------------------------- phantom

def _auto_count(value: Optional[int], default: int, area_ratio: float, minimum: int) -> int:
    if value is not None:
        return int(value)
    return max(minimum, int(round(default * area_ratio)))


def _box(center: np.ndarray, half: float, shape: Sequence[int]):
    """Slices of the bounding box ``center +- half`` clipped to the volume, and its origin."""
    lo = [max(0, int(math.floor(c - half))) for c in center]
    hi = [min(n, int(math.ceil(c + half)) + 1) for c, n in zip(center, shape)]
    if any(h <= l for l, h in zip(lo, hi)):
        return None, None
    grids = np.meshgrid(*[np.arange(l, h, dtype=np.float32) for l, h in zip(lo, hi)], indexing="ij")
    rel = [g - np.float32(c) for g, c in zip(grids, center)]
    return tuple(slice(l, h) for l, h in zip(lo, hi)), rel


def _paint(volume: np.ndarray, region, occupancy: np.ndarray, amplitude: float) -> None:
    """Protein dark: keep the most negative of the current value and ``-amplitude * occupancy``."""
    np.minimum(volume[region], np.float32(-amplitude) * occupancy, out=volume[region])


def _soft(edge_distance: np.ndarray) -> np.ndarray:
    """Anti-aliased occupancy from the signed distance to the surface (positive inside)."""
    return np.clip(edge_distance + 0.5, 0.0, 1.0).astype(np.float32)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def make_phantom(cfg: SimulationConfig, rng: np.random.Generator) -> np.ndarray:
    """The ground-truth phantom (blobs, ellipsoids, vesicles in a slab).

    Parameters
    ----------
    cfg : SimulationConfig
        Shape, slab and object settings.
    rng : numpy.random.Generator
        Draws the objects.

    Returns
    -------
    numpy.ndarray
        float32 ``(z, y, x)``, protein dark, zero outside the slab.
    """
    shape = tuple(int(s) for s in cfg.shape)
    nz, ny, nx = shape
    z0, z1 = slab_bounds(shape, cfg.slab_fraction)
    half_slab = (z1 - z0) / 2.0
    zc = (z0 + z1 - 1) / 2.0
    area_ratio = ny * nx / _REFERENCE_AREA
    volume = np.zeros(shape, dtype=np.float32)

    def centre(radius_z: float) -> np.ndarray:
        span = max(0.0, half_slab - radius_z - 1.5)
        return np.array([zc + rng.uniform(-span, span), rng.uniform(0, ny - 1), rng.uniform(0, nx - 1)])

    # vesicles: membrane shells (painted first so that particles may sit on them)
    for _ in range(_auto_count(cfg.n_vesicles, _AUTO_VESICLES, area_ratio, 1)):
        thickness = rng.uniform(2.0, 3.0)
        r_max = max(3.0, min(16.0, half_slab - thickness / 2 - 1.5))
        radius = rng.uniform(0.55, 1.0) * r_max
        c = centre(radius + thickness / 2)
        region, rel = _box(c, radius + thickness, shape)
        if region is not None:
            dist = np.sqrt(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2)
            _paint(volume, region, _soft(thickness / 2 - np.abs(dist - radius)), rng.uniform(0.9, 1.2))

    # filaments: straight cylinders lying roughly in the slab plane
    for _ in range(_auto_count(cfg.n_filaments, _AUTO_FILAMENTS, area_ratio, 1)):
        radius = rng.uniform(1.5, 3.0)
        span = max(0.0, half_slab - radius - 1.5)
        ends = np.array([[zc + rng.uniform(-span, span), rng.uniform(0, ny - 1), rng.uniform(0, nx - 1)]
                         for _ in range(2)])
        a, b = ends
        d = b - a
        length2 = float(d @ d) or 1.0
        region, rel = _box((a + b) / 2, math.sqrt(length2) / 2 + radius + 1, shape)
        if region is not None:
            pa = [r + np.float32(m - s) for r, m, s in zip(rel, (a + b) / 2, a)]  # coordinates - a
            t = np.clip((pa[0] * d[0] + pa[1] * d[1] + pa[2] * d[2]) / length2, 0.0, 1.0)
            dist = np.sqrt(sum((p - t * di) ** 2 for p, di in zip(pa, d)))
            _paint(volume, region, _soft(radius - dist), rng.uniform(0.8, 1.0))

    # particles: solid blobs and ellipsoids of several sizes
    for _ in range(_auto_count(cfg.n_particles, _AUTO_PARTICLES, area_ratio, 2)):
        r_max = max(2.0, min(8.0, half_slab - 1.5))
        if rng.uniform() < 0.5:
            radius = rng.uniform(1.5, r_max)
            c = centre(radius)
            region, rel = _box(c, radius + 1, shape)
            if region is not None:
                dist = np.sqrt(rel[0] ** 2 + rel[1] ** 2 + rel[2] ** 2)
                _paint(volume, region, _soft(radius - dist), rng.uniform(0.6, 1.0))
        else:
            axes = np.sort(rng.uniform(1.5, r_max, size=3))
            rot = _random_rotation(rng)
            c = centre(axes[-1])
            region, rel = _box(c, axes[-1] + 1, shape)
            if region is not None:
                local = [rot[0, i] * rel[0] + rot[1, i] * rel[1] + rot[2, i] * rel[2] for i in range(3)]
                norm = np.sqrt(sum((l / a) ** 2 for l, a in zip(local, axes)))
                _paint(volume, region, _soft((1.0 - norm) * axes[0]), rng.uniform(0.6, 1.0))

    if cfg.smooth_sigma_vox > 0:
        volume = scipy.ndimage.gaussian_filter(volume, cfg.smooth_sigma_vox, mode="constant")
    volume[:z0] = 0.0
    volume[z1:] = 0.0
    return volume.astype(np.float32, copy=False)


# --------------------------------------------------------------------------- projector

def detector_width(shape: Sequence[int]) -> int:
    """Detector pixels along u that catch the whole ``(z, x)`` box at any tilt.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.

    Returns
    -------
    int
        Pixels.
    """
    nz, _, nx = (int(s) for s in shape)
    return int(math.ceil(math.hypot(nz, nx))) + 4


def projection_matrix(shape: Sequence[int], angles_deg: npt.ArrayLike, *,
                      n_u: Optional[int] = None) -> scipy.sparse.csr_matrix:
    """Sparse projector of all tilts.

    Row ``t * n_u + i`` is detector pixel ``i`` of tilt ``t``; column ``z * nx + x`` the voxel
    ``(z, x)`` of a y slice. Each voxel centre lands at ``u = z sin theta + x cos theta``
    (relative to the centres of box and detector) and is shared linearly between the two nearest
    detector pixels. Its transpose is the (linear interpolation) back-projector.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    angles_deg : array_like
        Tilt angles (degrees).
    n_u : int, optional
        Detector pixels (default :func:`detector_width`); a narrower detector drops what falls
        beside it (a specimen wider than the camera).

    Returns
    -------
    scipy.sparse.csr_matrix
        float32 ``(n_tilts * n_u, nz * nx)``.
    """
    nz, _, nx = (int(s) for s in shape)
    n_u = detector_width(shape) if n_u is None else int(n_u)
    zz, xx = np.meshgrid(np.arange(nz) - (nz - 1) / 2.0, np.arange(nx) - (nx - 1) / 2.0, indexing="ij")
    zz, xx = zz.ravel(), xx.ravel()
    cols = np.arange(nz * nx)
    rows, vals, cidx = [], [], []
    for t, theta in enumerate(np.deg2rad(np.asarray(angles_deg, dtype=np.float64))):
        u = zz * math.sin(theta) + xx * math.cos(theta) + (n_u - 1) / 2.0
        i0 = np.floor(u).astype(np.int64)
        w1 = u - i0
        for i, w in ((i0, 1.0 - w1), (i0 + 1, w1)):
            on = (i >= 0) & (i < n_u)
            rows.append(t * n_u + i[on])
            vals.append(w[on])
            cidx.append(cols[on])
    matrix = scipy.sparse.csr_matrix(
        (np.concatenate(vals).astype(np.float32), (np.concatenate(rows), np.concatenate(cidx))),
        shape=(int(np.size(angles_deg)) * n_u, nz * nx))
    return matrix


def _ramp_filter(n_u: int) -> Tuple[np.ndarray, int]:
    """Ram-Lak filter (rfft layout) for zero-padded rows: the FFT of the band-limited
    spatial kernel ``h[0] = 1/4, h[odd n] = -1/(pi n)^2`` (Kak & Slaney), ~``|k|`` in cycles/pixel."""
    n_pad = 1 << int(math.ceil(math.log2(2 * n_u)))
    n = np.fft.fftfreq(n_pad) * n_pad
    h = np.zeros(n_pad)
    h[0] = 0.25
    odd = (np.abs(n) % 2) == 1
    h[odd] = -1.0 / (math.pi * n[odd]) ** 2
    return np.fft.rfft(h).real.astype(np.float32), n_pad


def project(volume: np.ndarray, matrix: scipy.sparse.csr_matrix, n_tilts: int) -> np.ndarray:
    """Tilt images of a volume (line integrals, voxel units).

    Parameters
    ----------
    volume : numpy.ndarray
        ``(z, y, x)``.
    matrix : scipy.sparse.csr_matrix
        :func:`projection_matrix` of its shape.
    n_tilts : int
        Tilts in the matrix.

    Returns
    -------
    numpy.ndarray
        ``(n_tilts, ny, n_u)``.
    """
    nz, ny, nx = volume.shape
    columns = np.ascontiguousarray(volume.transpose(0, 2, 1)).reshape(nz * nx, ny)
    stack = matrix @ columns                                     # (n_tilts * n_u, ny)
    return np.ascontiguousarray(stack.reshape(n_tilts, -1, ny).transpose(0, 2, 1), dtype=np.float32)


def weighted_back_projection(images: np.ndarray, matrix: scipy.sparse.csr_matrix,
                             shape: Sequence[int], weights: np.ndarray) -> np.ndarray:
    """Weighted back-projection: ramp filter along u, tilt ``t`` weighted by ``weights[t]``,
    back-projected.

    Parameters
    ----------
    images : numpy.ndarray
        Tilt images ``(n_tilts, ny, n_u)``.
    matrix : scipy.sparse.csr_matrix
        :func:`projection_matrix` of the volume's shape and the tilts.
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    weights : numpy.ndarray
        ``(n_tilts,)``, each tilt's angular share (radians).

    Returns
    -------
    numpy.ndarray
        float32 ``(z, y, x)``.
    """
    nz, ny, nx = (int(s) for s in shape)
    n_tilts, _, n_u = images.shape
    ramp, n_pad = _ramp_filter(n_u)
    filtered = np.fft.irfft(np.fft.rfft(images, n=n_pad, axis=-1) * ramp, n=n_pad, axis=-1)[..., :n_u]
    filtered = filtered * weights.reshape(-1, 1, 1)
    stack = np.ascontiguousarray(filtered.transpose(0, 2, 1), dtype=np.float32).reshape(n_tilts * n_u, ny)
    columns = matrix.T @ stack                                   # (nz * nx, ny)
    return np.ascontiguousarray(columns.reshape(nz, nx, ny).transpose(0, 2, 1), dtype=np.float32)


def _apply_ctf(images: np.ndarray, cfg: SimulationConfig, defocus_a: float) -> np.ndarray:
    """Multiply each tilt image ``(y, u)`` by the 2D CTF (isotropic, protein-dark sign)."""
    from isonet2core.imaging.ctf import ctf_3d

    _, ny, n_u = images.shape
    ctf = ctf_3d((1, ny, n_u), cfg.pixel_size_a, defocus_a, cfg.voltage_kv, cfg.cs_mm,
                 cfg.amplitude_contrast, rfft=True).cpu().numpy().astype(np.float32)[0]
    return np.fft.irfft2(np.fft.rfft2(images) * ctf, s=(ny, n_u)).astype(np.float32)


# --------------------------------------------------------------------------- public API

def simulate_tomogram(cfg: SimulationConfig, seed: Optional[int] = None, *,
                      defocus_a: Optional[float] = None) -> Dict[str, object]:
    """Simulate one tomogram in memory.

    Parameters
    ----------
    cfg : SimulationConfig
        The settings.
    seed : int, optional
        Drives the phantom and the noise (default ``cfg.seed``).
    defocus_a : float, optional
        Defocus of the CTF (Angstrom, default ``cfg.defocus_a``).

    Returns
    -------
    dict
        ``"full"``, ``"even"``, ``"odd"``, ``"ground_truth"`` (float32 ``(z, y, x)``, protein
        dark), ``"tilt_angles_deg"`` (float64 ``(n_tilts,)``, ascending), ``"even_tilts"`` /
        ``"odd_tilts"`` (indices into it), ``"slab_z"`` (``(z0, z1)``), ``"noise_sigma"`` (per
        detector pixel, 0 when noise-free), ``"seed"`` and the acquisition parameters
        ``pixel_size_a``, ``defocus_a``, ``voltage_kv``, ``cs_mm``, ``amplitude_contrast``,
        ``tilt_min_deg``, ``tilt_max_deg``, ``tilt_step_deg``.
    """
    cfg.validate()
    seed = cfg.seed if seed is None else int(seed)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    defocus_a = cfg.defocus_a if defocus_a is None else float(defocus_a)
    if defocus_a < 0:
        raise ValueError(f"defocus must not be negative, got {defocus_a} A (underfocus is positive)")
    shape = tuple(int(s) for s in cfg.shape)
    rng = np.random.default_rng(seed)
    angles = tilt_angles(cfg)
    n_tilts = len(angles)

    truth = make_phantom(cfg, rng)
    matrix = projection_matrix(shape, angles)
    images = _apply_ctf(project(truth, matrix, n_tilts), cfg, defocus_a)

    sigma = 0.0
    if cfg.dose_snr is not None:
        n_u = images.shape[-1]
        lo = (n_u - shape[2]) // 2
        signal_var = float(np.var(images[..., lo:lo + shape[2]], dtype=np.float64))
        sigma = math.sqrt(signal_var * n_tilts / cfg.dose_snr)
        images += rng.standard_normal(images.shape, dtype=np.float32) * np.float32(sigma)

    even_tilts = np.arange(0, n_tilts, 2)
    odd_tilts = np.arange(1, n_tilts, 2)
    step_rad = math.radians(cfg.tilt_step_deg)
    halves = {}
    for name, idx in (("even", even_tilts), ("odd", odd_tilts)):
        weights = np.zeros(n_tilts, dtype=np.float32)
        weights[idx] = 2.0 * step_rad
        halves[name] = weighted_back_projection(images, matrix, shape, weights)
    full = 0.5 * (halves["even"] + halves["odd"])

    return {
        "full": full.astype(np.float32),
        "even": halves["even"],
        "odd": halves["odd"],
        "ground_truth": truth,
        "tilt_angles_deg": angles,
        "even_tilts": even_tilts,
        "odd_tilts": odd_tilts,
        "slab_z": slab_bounds(shape, cfg.slab_fraction),
        "noise_sigma": sigma,
        "seed": seed,
        "pixel_size_a": float(cfg.pixel_size_a),
        "defocus_a": defocus_a,
        "voltage_kv": float(cfg.voltage_kv),
        "cs_mm": float(cfg.cs_mm),
        "amplitude_contrast": float(cfg.amplitude_contrast),
        "tilt_min_deg": float(angles[0]),
        "tilt_max_deg": float(angles[-1]),
        "tilt_step_deg": float(cfg.tilt_step_deg),
    }


def format_imod_defocus(angles_deg: Sequence[float], defocus_a: float) -> str:
    """An IMOD ctfplotter defocus file (version 2: ``start end angle angle defocus_nm``, 1-based
    image numbers, one line per tilt, the version in the first line's 6th column).

    Parameters
    ----------
    angles_deg : sequence of float
        Tilt angles (degrees).
    defocus_a : float
        Defocus of every tilt (Angstrom).

    Returns
    -------
    str
        The file's text.
    """
    lines = []
    for i, angle in enumerate(angles_deg, start=1):
        line = f"{i} {i} {angle:.2f} {angle:.2f} {defocus_a / 10.0:.1f}"
        lines.append(line + (" 2" if i == 1 else ""))
    return "\n".join(lines) + "\n"


def format_tlt(angles_deg: Sequence[float]) -> str:
    """An IMOD ``.tlt`` file.

    Parameters
    ----------
    angles_deg : sequence of float
        Tilt angles (degrees).

    Returns
    -------
    str
        One angle per line.
    """
    return "".join(f"{a:.2f}\n" for a in angles_deg)


def tomogram_name(index: int) -> str:
    """File stem of a simulated tomogram.

    Parameters
    ----------
    index : int
        1-based.

    Returns
    -------
    str
        ``tomo_001`` for 1.
    """
    return f"tomo_{index:03d}"


def make_dataset_folders(out: Path) -> None:
    """Create the folders of a simulated data set.

    Parameters
    ----------
    out : Path
        The data set's folder.

    Raises
    ------
    ValueError
        ``out`` is a file.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"output_dir {out} exists and is not a folder")
    for folder in VOLUME_FOLDERS + (CTF_FOLDER, TILT_FOLDER):
        (out / folder).mkdir(parents=True, exist_ok=True)


def write_tomogram_files(out: Path, name: str, result: Dict[str, Any], seed: int) -> dict:
    """Write one simulated tomogram's maps (``full``, ``even``, ``odd``, ``ground_truth``), IMOD
    ``.defocus`` and ``.tlt`` under ``out`` (the data-set layout).

    Parameters
    ----------
    out : Path
        The data set's folder.
    name : str
        File stem (:func:`tomogram_name`).
    result : dict
        :func:`simulate_tomogram` output.
    seed : int
        Its seed (recorded).

    Returns
    -------
    dict
        Its record: ``name``, ``seed``, ``defocus_a`` and the absolute paths.
    """
    from isonet2core.io.mrcio import write_mrc

    defocus = float(result["defocus_a"])
    angles = result["tilt_angles_deg"]
    record: dict = {"name": name, "seed": seed, "defocus_a": defocus}
    for folder in VOLUME_FOLDERS:
        path = out / folder / f"{name}.mrc"
        write_mrc(path, result[folder], float(result["pixel_size_a"]))
        record[folder] = str(path)
    record["defocus_file"] = str(out / CTF_FOLDER / f"{name}.defocus")
    atomic.write_text(Path(record["defocus_file"]), format_imod_defocus(angles, defocus))
    record["tilt_file"] = str(out / TILT_FOLDER / f"{name}.tlt")
    atomic.write_text(Path(record["tilt_file"]), format_tlt(angles))
    return record


def simulate_dataset(out_dir: PathLike, cfg: SimulationConfig, n_tomograms: int = 1, *,
                     on_written: Optional[Callable[[dict], None]] = None) -> List[dict]:
    """Simulate tomograms and write them.

    Layout (same file name in each folder): ``full/tomo_001.mrc``, ``even/...``, ``odd/...``,
    ``ground_truth/...`` (float32, voxel size in the header), ``ctf/tomo_001.defocus`` (IMOD, nm),
    ``tilt/tomo_001.tlt`` and ``acquisition.json`` (settings, tilt angles and the per tomogram
    seed and defocus). Tomogram ``i`` (0-based) uses seed ``cfg.seed + i`` and defocus
    ``cfg.defocus_a + i * cfg.defocus_step_a``. Existing files of the same names are replaced.

    Parameters
    ----------
    out_dir : str or Path
        The data set's folder.
    cfg : SimulationConfig
        The settings.
    n_tomograms : int
        How many.
    on_written : callable, optional
        Called with each tomogram's dict once its files are written.

    Returns
    -------
    list of dict
        Per tomogram: ``name``, ``seed``, ``defocus_a``, the absolute paths (``full``, ``even``,
        ``odd``, ``ground_truth``, ``defocus_file``, ``tilt_file``).
    """
    cfg.validate()
    if int(n_tomograms) != n_tomograms or n_tomograms < 1:
        raise ValueError(f"n_tomograms must be a positive integer, got {n_tomograms}")
    out = Path(out_dir).absolute()
    make_dataset_folders(out)

    records = []
    for i in range(int(n_tomograms)):
        name = tomogram_name(i + 1)
        defocus = cfg.defocus_a + i * cfg.defocus_step_a
        result = simulate_tomogram(cfg, cfg.seed + i, defocus_a=defocus)
        record = write_tomogram_files(out, name, result, cfg.seed + i)
        logger.info("simulated %s (seed %d, defocus %.0f A, noise sigma %.4g)",
                    name, record["seed"], defocus, result["noise_sigma"])
        records.append(record)
        if on_written is not None:
            on_written(record)

    angles = tilt_angles(cfg)
    acquisition = {
        "pixel_size_a": cfg.pixel_size_a,
        "voltage_kv": cfg.voltage_kv,
        "cs_mm": cfg.cs_mm,
        "amplitude_contrast": cfg.amplitude_contrast,
        "tilt_min_deg": float(angles[0]),
        "tilt_max_deg": float(angles[-1]),
        "tilt_step_deg": cfg.tilt_step_deg,
        "tilt_angles_deg": [float(a) for a in angles],
        "even_tilts": "even indices (0-based, ascending angle order)",
        "contrast": "protein dark (ground truth density negative, solvent 0)",
        "config": dataclasses.asdict(cfg),
        "tomograms": [{k: (os.path.relpath(v, out) if k not in ("name", "seed", "defocus_a") else v)
                       for k, v in r.items()} for r in records],
    }
    atomic.write_text(out / ACQUISITION_FILE, json.dumps(acquisition, indent=2) + "\n")
    return records
