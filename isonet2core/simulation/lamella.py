"""Realistic cryo-ET lamellae from atomic models: the data the restoration is judged on.

:mod:`isonet2core.simulation.simulate` (blobs, white noise) is fast and easy; this simulator is slower and
hard in the ways real data are hard. One tomogram is made in five steps, all deterministic for a
given seed:

1. **Specimen** (Coulomb potential in volts on a grid of half the pixel size). Macromolecules are
   built from real atomic models shipped in ``data/structures.npz`` (heavy atoms of seven PDB
   entries taken from the MDAnalysisTests source archive on PyPI; ``bench/assets`` rebuilds
   it). PyPI ships no ribosome, so the large complexes are *assemblies* of those real chains
   shaped like the named ones (:data:`isonet2core.simulation.structures.SPECIES`): a "70S-like" and a "spliceosome-like" compact
   cluster of 15 and 11 chains (about 1.0 and 0.7 MDa), a "chaperonin-like" double heptamer, an
   "apoferritin-like" octahedral 24-mer, actin-like helical filaments (rise 27.5 A, twist
   -166.7 deg), and single chains. Each atom contributes its Peng (1996) electron scattering
   amplitude (5 Gaussians, C/N/O/S/P) times ``47.878 V A^2`` with a Debye-Waller B of 30 A^2;
   the displaced solvent is removed. The particles are placed with random orientations,
   without overlap, in a slab of vitreous ice (4.57 V, ``ice_thickness_a``) tilted by
   ``pretilt_deg`` about y (a milled lamella), together with lipid vesicles and one membrane
   crossing the lamella (bilayer profile: head groups +2.0 V at +-19 A, core -0.9 V). The grid
   is wider than the camera's field of view in x, so that at high tilt the beam crosses
   specimen outside the reconstructed box, as in a lamella.
2. **Ground truth**: the specimen's potential relative to plain ice (macromolecules and
   membranes; solvent and vacuum 0), band-limited to the pixel size (ideal Fourier cropping of
   the half-pixel grid), on the reconstructed box, protein dark (negated). The ice slab itself
   (its step to vacuum) is in the images but not in the truth: it is no structure to restore.
3. **Tilt series**, dose-symmetric from 0 deg (``total_dose`` e/A^2 spread evenly): projection
   of the potential (tilt axis y, :func:`isonet2core.simulation.simulate.projection_matrix`), phase
   ``sigma * V_proj`` (interaction constant ``sigma`` of the voltage), weak-phase image
   ``1 - 2 * T (x) phase`` with the CTF ``T`` of :mod:`isonet2core.imaging.ctf` at the tilt's defocus,
   an imaging envelope ``exp(-B k^2 / 4)`` (``envelope_bfactor``: drift, alignment and
   coherence), the exposure filter of Grant & Grigorieff (2015) for the dose already received
   and a random alignment error per tilt (``alignment_error_px``, Gaussian sub-pixel shifts).
   Inelastic loss ``exp(-t / 3500 A)`` over the path ``t = ice / cos(tilt - pretilt)``
   (energy-filtered) lowers the counts.
4. **Counting noise, even/odd from frames**: each tilt's dose is split into two halves of its
   frames, counted independently (Poisson, detector DQE ``dqe``); the even map is made of the
   even frames of every tilt, the odd map of the odd frames, so both halves hold every tilt.
5. **Weighted back-projection** of each half (images normalised to ``counts / mean - 1``,
   the camera's ``nx`` columns, tapered edges), ``full = (even + odd) / 2``.

Calibration (default settings, seed 0, 64 x 192 x 192 at 8 A) against what a held-out set of
this kind gives: see :func:`calibration` and the README's quality section.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt
import scipy.ndimage
from scipy.spatial.transform import Rotation

from isonet2core.config import check_tilt_range
from isonet2core.io import atomic
from isonet2core.io.output_names import PathLike
from isonet2core.simulation import structures
from isonet2core.simulation.simulate import (
    detector_width,
    project,
    projection_matrix,
    tomogram_name,
    weighted_back_projection,
)

#: Peng et al. (1996) elastic electron scattering amplitudes, f(s) = sum a_i exp(-b_i s^2),
#: s = |k| / 2 in 1/A, a in A, b in A^2 (as tabulated for 0 <= s <= 6 / A).
PENG_A = {"C": (0.0893, 0.2563, 0.7570, 1.0487, 0.3575), "N": (0.1022, 0.3219, 0.7982, 0.8197, 0.1715),
          "O": (0.0974, 0.2921, 0.6910, 0.6990, 0.2039), "S": (0.2497, 0.5628, 1.3899, 2.1865, 0.7715),
          "P": (0.2548, 0.6106, 1.4541, 2.3204, 0.8477), "H": (0.0349, 0.1201, 0.1970, 0.0573, 0.1195)}
PENG_B = {"C": (0.2465, 1.7100, 6.4094, 18.6113, 50.2523), "N": (0.2451, 1.7481, 6.1925, 17.3894, 48.1431),
          "O": (0.2067, 1.3815, 4.6943, 12.7105, 32.4726), "S": (0.2681, 1.6711, 7.0267, 19.5377, 50.3888),
          "P": (0.2908, 1.8740, 8.5176, 24.3434, 63.2996), "H": (0.5347, 3.5867, 12.3471, 18.9525, 38.6269)}
#: potential (V) of one A of scattering amplitude per A^3: h^2 / (2 pi m0 e) in V A^2
POTENTIAL_PER_AMPLITUDE = 47.878
WATER_PER_A3 = 0.0314            # molecules per A^3 of vitreous ice (0.94 g/cm^3)
HEAVY_ATOMS_PER_A3 = 0.0630      # of protein (1.35 g/cm^3)
ATOM_BFACTOR_A2 = 30.0
INELASTIC_MFP_A = 3500.0         # inelastic mean free path at 300 kV (energy-filtered images)
MEMBRANE_HEAD_V, MEMBRANE_CORE_V = 2.0, -0.9


def scattering_amplitude(element: str, s: np.ndarray) -> np.ndarray:
    """Peng's electron scattering amplitude of an element.

    Parameters
    ----------
    element : str
        Symbol (``C``, ``N``, ``O``, ``S``, ``P``, ...).
    s : numpy.ndarray
        ``|k| / 2`` (1/Angstrom), any shape.

    Returns
    -------
    numpy.ndarray
        Amplitude (Angstrom), shape of ``s``.
    """
    return sum(a * np.exp(-b * s ** 2) for a, b in zip(PENG_A[element], PENG_B[element]))


def ice_potential_v() -> float:
    """Mean inner potential of vitreous ice: water's f(0) times its number density.

    Returns
    -------
    float
        Volts.
    """
    f_water = float(scattering_amplitude("O", np.zeros(1))[0] + 2 * scattering_amplitude("H", np.zeros(1))[0])
    return POTENTIAL_PER_AMPLITUDE * f_water * WATER_PER_A3


def interaction_constant(voltage_kv: float) -> float:
    """The interaction constant ``sigma = 2 pi m e lambda / h^2`` with relativistic mass and
    wavelength.

    Parameters
    ----------
    voltage_kv : float
        Acceleration voltage (kV).

    Returns
    -------
    float
        rad / (V A).
    """
    from isonet2core.imaging.ctf import electron_wavelength_a
    m0c2 = 510998.95                      # eV
    lam = electron_wavelength_a(voltage_kv)
    e_v = voltage_kv * 1e3
    return 2 * math.pi / (lam * e_v) * (m0c2 + e_v) / (2 * m0c2 + e_v)


# --------------------------------------------------------------------------------- config

@dataclass(frozen=True)
class LamellaConfig:
    """Settings of the lamella simulator (units in the names, defocus underfocus positive).

    ``geometry`` presets (:data:`GEOMETRIES`) set the tilt range and the pre-tilt; the counts
    of each species are per 192 x 192 pixel area at 8 A (scaled with the area).
    """
    shape: Tuple[int, int, int] = (64, 192, 192)
    pixel_size_a: float = 8.0
    tilt_min_deg: float = -60.0
    tilt_max_deg: float = 60.0
    tilt_step_deg: float = 3.0
    pretilt_deg: float = 0.0
    ice_thickness_a: float = 435.0
    total_dose: float = 100.0              # e/A^2 over the tilt series
    dqe: float = 0.7
    defocus_a: float = 30000.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.07
    envelope_bfactor: float = 2500.0       # A^2: drift, alignment residuals, coherence
    alignment_error_px: float = 0.4
    crowding: float = 1.0                  # multiplies every species' count
    n_vesicles: int = 3
    membrane: bool = True
    seed: int = 0

    def validate(self) -> LamellaConfig:
        """Check the values.

        Returns
        -------
        LamellaConfig
            ``self``, when every value is usable.

        Raises
        ------
        ValueError
            Naming the setting.
        """
        if len(self.shape) != 3 or any(int(s) != s or s < 16 for s in self.shape):
            raise ValueError(f"shape must be three integers (z, y, x) of at least 16, got {self.shape}")
        for name in ("pixel_size_a", "tilt_step_deg", "ice_thickness_a", "total_dose", "dqe", "voltage_kv"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        check_tilt_range(self.tilt_min_deg, self.tilt_max_deg)
        if abs(self.pretilt_deg) >= 45:
            raise ValueError(f"pretilt_deg must be within +-45 degrees, got {self.pretilt_deg}")
        for name in ("defocus_a", "cs_mm", "envelope_bfactor", "alignment_error_px", "crowding", "n_vesicles"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not 0.0 <= self.amplitude_contrast < 1.0:
            raise ValueError(f"amplitude_contrast must be in [0, 1), got {self.amplitude_contrast}")
        if self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed}")
        return self


#: the two benchmark geometries: a symmetric +-60 series and a milled lamella's asymmetric
#: range with the lamella plane 10 degrees off the beam's normal at 0 degrees.
GEOMETRIES: Dict[str, Dict[str, float]] = {
    "pm60": {"tilt_min_deg": -60.0, "tilt_max_deg": 60.0, "pretilt_deg": 0.0},
    "lamella": {"tilt_min_deg": -50.0, "tilt_max_deg": 40.0, "pretilt_deg": 10.0},
}


def geometry_config(geometry: str, **overrides) -> LamellaConfig:
    """The configuration of a named geometry.

    Parameters
    ----------
    geometry : str
        A key of :data:`GEOMETRIES` (``pm60``, ``lamella``).
    **overrides
        Fields replaced.

    Returns
    -------
    LamellaConfig
        Not validated.
    """
    if geometry not in GEOMETRIES:
        raise ValueError(f"geometry must be one of {', '.join(GEOMETRIES)}, got {geometry!r}")
    return LamellaConfig(**{**GEOMETRIES[geometry], **overrides}).validate()


def tilt_angles(cfg: LamellaConfig) -> np.ndarray:
    """The tilt angles of a lamella.

    Parameters
    ----------
    cfg : LamellaConfig
        Its tilt range and step.

    Returns
    -------
    numpy.ndarray
        float64 degrees, ascending from ``tilt_min_deg`` in steps of ``tilt_step_deg``.
    """
    n = int(math.floor((cfg.tilt_max_deg - cfg.tilt_min_deg) / cfg.tilt_step_deg + 1e-6)) + 1
    return cfg.tilt_min_deg + cfg.tilt_step_deg * np.arange(n)


def dose_symmetric_order(angles_deg: npt.ArrayLike) -> np.ndarray:
    """Acquisition rank of each tilt in a dose-symmetric scheme (Hagen): nearest 0 first, then
    alternating sides outward.

    Parameters
    ----------
    angles_deg : array_like
        Tilt angles (degrees).

    Returns
    -------
    numpy.ndarray
        int ``(n_tilts,)``: ``order[i]`` tilts were taken before tilt ``i``.
    """
    angles = np.asarray(angles_deg, dtype=np.float64)
    start = int(np.argmin(np.abs(angles)))
    pos = [i for i in range(start + 1, len(angles))]
    neg = [i for i in range(start - 1, -1, -1)]
    seq = [start]
    while pos or neg:
        if pos:
            seq.append(pos.pop(0))
        if neg:
            seq.append(neg.pop(0))
    order = np.empty(len(angles), dtype=np.int64)
    order[np.asarray(seq)] = np.arange(len(seq))
    return order


# --------------------------------------------------------------------------------- scene

@dataclass
class _Scene:
    """The specimen on the fine grid ``(Z, Y, X)`` (voxel ``h`` A): atom amplitude (A of
    scattering amplitude per voxel, before the form factor), atom counts, membranes (V)."""
    h: float
    shape: Tuple[int, int, int]
    amplitude: np.ndarray
    counts: np.ndarray
    membrane_v: np.ndarray


def _slab_coordinate(shape, h: float, pretilt_deg: float) -> np.ndarray:
    """Distance (A) along the lamella normal from the lamella mid-plane, per fine voxel
    ``(Z, 1, X)`` (the lamella is tilted by ``pretilt_deg`` about y)."""
    nz, _, nx = shape
    z = (np.arange(nz) - (nz - 1) / 2.0)[:, None, None] * h
    x = (np.arange(nx) - (nx - 1) / 2.0)[None, None, :] * h
    p = math.radians(pretilt_deg)
    return z * math.cos(p) - x * math.sin(p)


def _splat(grid: np.ndarray, points_vox: np.ndarray, weights: np.ndarray) -> None:
    """Trilinear deposit of ``weights`` at fractional voxel positions ``(n, 3)`` into ``grid``."""
    shape = np.asarray(grid.shape)
    base = np.floor(points_vox).astype(np.int64)
    frac = points_vox - base
    flat = grid.reshape(-1)
    for dz in (0, 1):
        for dy in (0, 1):
            for dx in (0, 1):
                idx = base + (dz, dy, dx)
                w = (np.where(dz, frac[:, 0], 1 - frac[:, 0]) * np.where(dy, frac[:, 1], 1 - frac[:, 1])
                     * np.where(dx, frac[:, 2], 1 - frac[:, 2])) * weights
                ok = np.all((idx >= 0) & (idx < shape), axis=1)
                lin = np.ravel_multi_index(idx[ok].T, grid.shape)
                flat += np.bincount(lin, weights=w[ok], minlength=flat.size).astype(grid.dtype)


@dataclass(frozen=True)
class _Frame:
    """The lamella's frame on the fine grid: voxel ``h`` (A), centre (voxels), extent (A),
    the lamella normal and in-plane x direction as ``(z, y, x)`` unit vectors."""
    h: float
    shape: Tuple[int, int, int]
    centre: np.ndarray
    extent: np.ndarray
    normal: np.ndarray
    in_plane: np.ndarray


def _build_scene(cfg: LamellaConfig, fine_shape, h: float, rng: np.random.Generator) -> _Scene:
    """Membranes, filaments and macromolecules of one lamella (in this order from ``rng``)."""
    p = math.radians(cfg.pretilt_deg)
    frame = _Frame(h=h, shape=tuple(fine_shape), centre=(np.asarray(fine_shape) - 1) / 2.0,
                   extent=np.asarray(fine_shape) * h, normal=np.array([math.cos(p), 0.0, -math.sin(p)]),
                   in_plane=np.array([math.sin(p), 0.0, math.cos(p)]))
    membranes = _membranes(cfg, frame, rng)
    membrane_v = _membrane_potential(membranes, frame)
    vox, el = _place_particles(cfg, frame, membranes, rng)
    elements = structures.element_names()
    f0 = np.array([scattering_amplitude(e, np.zeros(1))[0] for e in elements])
    amplitude = np.zeros(fine_shape, dtype=np.float32)
    counts = np.zeros(fine_shape, dtype=np.float32)
    if len(el):
        _splat(amplitude, vox, f0[el])
        _splat(counts, vox, np.ones(len(el)))
    return _Scene(h=h, shape=tuple(fine_shape), amplitude=amplitude, counts=counts, membrane_v=membrane_v)


def _membranes(cfg: LamellaConfig, frame: _Frame, rng: np.random.Generator
               ) -> List[Tuple[np.ndarray, float]]:
    """Vesicles and one large, gently curved cell membrane crossing the lamella, as spheres
    ``(centre (z, y, x) A, radius A)``."""
    extent, normal, in_plane = frame.extent, frame.normal, frame.in_plane
    membranes: List[Tuple[np.ndarray, float]] = []
    for _ in range(cfg.n_vesicles):
        r = rng.uniform(150.0, 380.0)
        c = (rng.uniform(-0.45, 0.45) * extent[2] * in_plane + rng.uniform(-0.5, 0.5) * cfg.ice_thickness_a * normal
             + np.array([0, rng.uniform(-0.4, 0.4) * extent[1], 0]))
        membranes.append((c, r))
    if cfg.membrane:
        r = rng.uniform(2500.0, 4000.0)
        side = rng.choice([-1.0, 1.0])
        c = np.array([0.0, side * (0.35 * extent[1] + r), rng.uniform(-0.2, 0.2) * extent[2]])
        membranes.append((c, r))
    return membranes


def _membrane_potential(membranes: Sequence[Tuple[np.ndarray, float]], frame: _Frame) -> np.ndarray:
    """The bilayer profile (V) of the membranes on the fine grid: head groups at +-19 A, core."""
    h, centre = frame.h, frame.centre
    zz, yy, xx = ((np.arange(n) - c) * h for n, c in zip(frame.shape, centre))
    membrane_v = np.zeros(frame.shape, dtype=np.float32)
    for c, r in membranes:
        # only the voxels within 40 A of the shell: a box around the sphere, then a band
        lo = [max(0, int(np.searchsorted(a, ci - r - 40.0))) for a, ci in zip((zz, yy, xx), c)]
        hi = [int(np.searchsorted(a, ci + r + 40.0)) for a, ci in zip((zz, yy, xx), c)]
        if any(h_ <= l_ for l_, h_ in zip(lo, hi)):
            continue
        d = np.sqrt((zz[lo[0]:hi[0], None, None] - c[0]) ** 2 + (yy[None, lo[1]:hi[1], None] - c[1]) ** 2
                    + (xx[None, None, lo[2]:hi[2]] - c[2]) ** 2).astype(np.float32) - np.float32(r)
        band = np.abs(d) < 40.0
        prof = np.zeros_like(d)
        db = d[band]
        prof[band] = (MEMBRANE_HEAD_V * np.exp(-0.5 * ((np.abs(db) - 19.0) / 4.0) ** 2)
                      + MEMBRANE_CORE_V * np.exp(-0.5 * (db / 7.0) ** 2))
        membrane_v[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] += prof
    return membrane_v


def _place_particles(cfg: LamellaConfig, frame: _Frame, membranes: Sequence[Tuple[np.ndarray, float]],
                     rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Filaments roughly in the lamella plane, then macromolecules (largest first) at random
    orientations, off the membranes and without overlap: atom positions ``(n, 3)`` in fine
    voxels and element indices ``(n,)``."""
    h, centre, extent = frame.h, frame.centre, frame.extent
    normal, in_plane = frame.normal, frame.in_plane
    half_t = cfg.ice_thickness_a / 2.0
    area_ratio = (extent[1] * extent[2]) / (192 * 192 * 64.0)    # per 192^2 pixels of 8 A
    placed: List[Tuple[np.ndarray, float]] = []
    atoms_xyz: List[np.ndarray] = []
    atoms_el: List[np.ndarray] = []

    def deposit(xyz: np.ndarray, el: np.ndarray) -> None:
        atoms_xyz.append((xyz / h + centre).astype(np.float32))
        atoms_el.append(el.astype(np.uint8))

    n_fil = int(round(structures.FILAMENTS_PER_AREA * area_ratio * cfg.crowding))
    for _ in range(n_fil):
        length = rng.uniform(0.5, 0.9) * extent[2]
        xyz, el = structures.filament(length)
        ang = rng.uniform(0, 2 * math.pi)
        direction = math.cos(ang) * in_plane + math.sin(ang) * np.array([0.0, 1.0, 0.0])
        direction = direction + rng.normal(0, 0.1) * normal
        direction /= np.linalg.norm(direction)
        # rotate the filament axis (z of its frame) onto ``direction``, spin about it at random
        spin = Rotation.from_euler("z", rng.uniform(0, 360), degrees=True)
        pts = structures.axis_to(direction).apply(spin.apply(xyz))
        c = rng.uniform(-0.25, 0.25) * cfg.ice_thickness_a * normal + np.array(
            [0, rng.uniform(-0.3, 0.3) * extent[1], 0]) + rng.uniform(-0.2, 0.2) * extent[2] * in_plane
        deposit(pts + c, el)
        # keep particles off the filament: sample its axis as a row of exclusion spheres
        for t in np.linspace(-length / 2, length / 2, max(2, int(length / 60))):
            placed.append((c + t * direction, 40.0))

    order = sorted(structures.SPECIES, key=lambda s: -structures.radius(structures.species_atoms(s)[0]))
    for name in order:
        xyz0, el = structures.species_atoms(name)
        r = structures.radius(xyz0) * 0.9
        count = int(round(structures.SPECIES[name] * area_ratio * cfg.crowding))
        for _ in range(count):
            for _try in range(60):
                pos = (rng.uniform(-1, 1) * max(half_t - r, 0.0) * normal
                       + np.array([0, rng.uniform(-0.5, 0.5) * extent[1], 0])
                       + rng.uniform(-0.5, 0.5) * extent[2] * in_plane)
                if any(abs(np.linalg.norm(pos - c) - rm) <= r + 25.0 for c, rm in membranes):
                    continue
                if all(np.linalg.norm(pos - q) > r + rq for q, rq in placed):
                    break
            else:
                continue
            placed.append((pos, r))
            deposit(Rotation.random(random_state=rng).apply(xyz0) + pos, el)
    if not atoms_xyz:
        return np.zeros((0, 3), np.float32), np.zeros(0, np.uint8)
    return np.concatenate(atoms_xyz), np.concatenate(atoms_el)


def _downsample2(spec: np.ndarray, fine_shape: Sequence[int]) -> np.ndarray:
    """Ideal downsampling by 2 of a volume given by its ``rfftn`` (keep |k| below the coarse
    Nyquist), as the average over each coarse voxel would be, without aliasing."""
    cz, cy, cx = (s // 2 for s in fine_shape)
    kept = np.concatenate([spec[: cz // 2 + 1], spec[spec.shape[0] - (cz - cz // 2 - 1):]], axis=0)
    kept = np.concatenate([kept[:, : cy // 2 + 1], kept[:, spec.shape[1] - (cy - cy // 2 - 1):]], axis=1)
    kept = kept[:, :, : cx // 2 + 1]
    return (np.fft.irfftn(kept, s=(cz, cy, cx)) * (cz * cy * cx) / float(np.prod(fine_shape))).astype(np.float32)


def _potential(cfg: LamellaConfig, scene: _Scene) -> Tuple[np.ndarray, np.ndarray]:
    """Coulomb potential (V) on the coarse grid (pixel size), band-limited: ``(total, specimen)``
    where ``specimen = total - V_ice * slab`` (what differs from plain ice: macromolecules,
    membranes; 0 in solvent and in vacuum)."""
    h = scene.h
    # atoms: amplitude per voxel -> V, with the (carbon-shaped) form factor and Debye-Waller B
    kz = np.fft.fftfreq(scene.shape[0], d=h)[:, None, None]
    ky = np.fft.fftfreq(scene.shape[1], d=h)[None, :, None]
    kx = np.fft.rfftfreq(scene.shape[2], d=h)[None, None, :]
    k2 = kz ** 2 + ky ** 2 + kx ** 2
    shape_factor = (scattering_amplitude("C", np.sqrt(k2) / 2.0) / scattering_amplitude("C", np.zeros(1))[0]
                    * np.exp(-ATOM_BFACTOR_A2 * k2 / 4.0))
    atoms_v = scene.amplitude * np.float32(POTENTIAL_PER_AMPLITUDE / h ** 3)
    # solvent displaced by the atoms (volume fraction from the local heavy-atom density)
    occupancy = np.clip(scipy.ndimage.gaussian_filter(scene.counts, 1.0) / (HEAVY_ATOMS_PER_A3 * h ** 3), 0, 1)
    slab = _slab_coordinate(scene.shape, h, cfg.pretilt_deg)
    ice = (ice_potential_v() / (1.0 + np.exp((np.abs(slab) - cfg.ice_thickness_a / 2.0) / 4.0))).astype(np.float32)
    rest = (scene.membrane_v * ice / ice_potential_v() - ice * occupancy).astype(np.float32)
    specimen = _downsample2(np.fft.rfftn(atoms_v) * shape_factor + np.fft.rfftn(rest), scene.shape)
    del atoms_v, rest
    ice_coarse = _downsample2(np.fft.rfftn(np.broadcast_to(ice, scene.shape)), scene.shape)
    return specimen + ice_coarse, specimen


def _exposure_filter(k_per_a: np.ndarray, dose: float) -> np.ndarray:
    """Grant & Grigorieff (2015) amplitude attenuation after ``dose`` e/A^2 (300 kV)."""
    critical = 0.245 * np.power(np.maximum(k_per_a, 1e-6), -1.665) + 2.81
    return np.exp(-dose / (2.0 * critical))


def _taper(n_u: int, n_cam: int, width: int = 6) -> np.ndarray:
    w = np.zeros(n_u, dtype=np.float32)
    lo = (n_u - n_cam) // 2
    w[lo:lo + n_cam] = 1.0
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, width + 2)[1:-1])
    w[lo:lo + width] = ramp
    w[lo + n_cam - width:lo + n_cam] = ramp[::-1]
    return w


# --------------------------------------------------------------------------------- public API

def simulate_lamella(cfg: LamellaConfig, seed: Optional[int] = None) -> Dict[str, object]:
    """Simulate one lamella tomogram in memory (module docstring).

    Parameters
    ----------
    cfg : LamellaConfig
        The settings.
    seed : int, optional
        Default ``cfg.seed``.

    Returns
    -------
    dict
        ``"full"``, ``"even"``, ``"odd"``, ``"ground_truth"`` (float32 ``(z, y, x)``, protein
        dark), ``"tilt_angles_deg"`` (ascending), ``"dose_before"`` (e/A^2 received before each
        tilt), ``"seed"`` and the acquisition (``pixel_size_a``, ``defocus_a``, ``voltage_kv``,
        ``cs_mm``, ``amplitude_contrast``, ``tilt_min_deg``, ``tilt_max_deg``,
        ``tilt_step_deg``, ``pretilt_deg``).
    """
    from isonet2core.imaging.ctf import ctf_3d

    cfg.validate()
    seed = cfg.seed if seed is None else int(seed)
    rng = np.random.default_rng(seed)
    nz, ny, nx = (int(s) for s in cfg.shape)
    angles = tilt_angles(cfg)
    n_tilts = len(angles)
    # the specimen extends beyond the camera's field of view in x (by what the beam crosses)
    t_max = math.radians(max(abs(angles[0]), abs(angles[-1])))
    margin = int(math.ceil(0.5 * nz * math.tan(t_max))) + 2
    wide = (nz, ny, nx + 2 * margin)
    h = cfg.pixel_size_a / 2.0
    scene = _build_scene(cfg, tuple(2 * s for s in wide), h, rng)
    potential, specimen = _potential(cfg, scene)               # (nz, ny, nx_wide) V
    del scene
    truth = np.ascontiguousarray(-specimen[:, :, margin:margin + nx])

    n_u = detector_width(cfg.shape)
    proj_wide = projection_matrix(wide, angles, n_u=n_u)
    images = project(potential, proj_wide, n_tilts) * np.float32(cfg.pixel_size_a)   # V A
    sigma = interaction_constant(cfg.voltage_kv)
    phase = images * np.float32(sigma)

    order = dose_symmetric_order(angles)
    dose_per_tilt = cfg.total_dose / n_tilts
    dose_before = order * dose_per_tilt
    ky = np.fft.fftfreq(ny, d=cfg.pixel_size_a)[:, None]
    ku = np.fft.rfftfreq(n_u, d=cfg.pixel_size_a)[None, :]
    k = np.sqrt(ky ** 2 + ku ** 2)
    ctf = ctf_3d((1, ny, n_u), cfg.pixel_size_a, cfg.defocus_a, cfg.voltage_kv, cfg.cs_mm,
                 cfg.amplitude_contrast, rfft=True).cpu().numpy()[0]
    envelope = np.exp(-cfg.envelope_bfactor * k ** 2 / 4.0)
    taper = _taper(n_u, nx)
    halves = {"even": np.empty_like(phase), "odd": np.empty_like(phase)}
    for t in range(n_tilts):
        shift = rng.normal(0.0, cfg.alignment_error_px, 2) if cfg.alignment_error_px > 0 else np.zeros(2)
        ramp = np.exp(-2j * math.pi * (ky * shift[0] + ku * shift[1]) * cfg.pixel_size_a)
        filt = ctf * envelope * _exposure_filter(k, dose_before[t] + 0.5 * dose_per_tilt) * ramp
        contrast = np.fft.irfft2(np.fft.rfft2(phase[t]) * filt, s=(ny, n_u))
        path = cfg.ice_thickness_a / max(math.cos(math.radians(angles[t] - cfg.pretilt_deg)), 0.1)
        mean_counts = 0.5 * dose_per_tilt * cfg.dqe * cfg.pixel_size_a ** 2 * math.exp(-path / INELASTIC_MFP_A)
        expected = np.clip(mean_counts * (1.0 - 2.0 * contrast), 0.0, None)
        for name in ("even", "odd"):
            counts = rng.poisson(expected).astype(np.float32)
            halves[name][t] = (counts / np.float32(mean_counts) - 1.0) * taper
    box = projection_matrix(cfg.shape, angles, n_u=n_u)
    weights = np.full(n_tilts, math.radians(cfg.tilt_step_deg), dtype=np.float32)
    even = weighted_back_projection(halves["even"], box, cfg.shape, weights)
    odd = weighted_back_projection(halves["odd"], box, cfg.shape, weights)
    return {
        "full": (0.5 * (even + odd)).astype(np.float32), "even": even, "odd": odd,
        "ground_truth": truth, "tilt_angles_deg": angles, "dose_before": dose_before, "seed": seed,
        "pixel_size_a": float(cfg.pixel_size_a), "defocus_a": float(cfg.defocus_a),
        "voltage_kv": float(cfg.voltage_kv), "cs_mm": float(cfg.cs_mm),
        "amplitude_contrast": float(cfg.amplitude_contrast), "tilt_min_deg": float(angles[0]),
        "tilt_max_deg": float(angles[-1]), "tilt_step_deg": float(cfg.tilt_step_deg),
        "pretilt_deg": float(cfg.pretilt_deg),
    }


def write_lamella_dataset(out_dir: PathLike, cfg: LamellaConfig, n_tomograms: int = 1) -> List[dict]:
    """Simulate lamellae (seed ``cfg.seed + i``) and write them as
    :func:`isonet2core.simulation.simulate.simulate_dataset` does: ``full/``, ``even/``, ``odd/``,
    ``ground_truth/`` MRC files, IMOD ``ctf/*.defocus`` and ``tilt/*.tlt``, and
    ``acquisition.json``.

    Parameters
    ----------
    out_dir : str or Path
        The data set's folder.
    cfg : LamellaConfig
        The settings.
    n_tomograms : int
        How many.

    Returns
    -------
    list of dict
        One per tomogram with the absolute paths.
    """
    from isonet2core.simulation.simulate import ACQUISITION_FILE, make_dataset_folders, write_tomogram_files

    cfg.validate()
    if int(n_tomograms) != n_tomograms or n_tomograms < 1:
        raise ValueError(f"n_tomograms must be a positive integer, got {n_tomograms}")
    out = Path(out_dir).absolute()
    make_dataset_folders(out)
    records = [write_tomogram_files(out, tomogram_name(i + 1), simulate_lamella(cfg, cfg.seed + i), cfg.seed + i)
               for i in range(int(n_tomograms))]
    angles = tilt_angles(cfg)
    acquisition = {"simulator": "lamella", "pixel_size_a": cfg.pixel_size_a, "voltage_kv": cfg.voltage_kv,
                   "cs_mm": cfg.cs_mm, "amplitude_contrast": cfg.amplitude_contrast,
                   "tilt_min_deg": float(angles[0]), "tilt_max_deg": float(angles[-1]),
                   "tilt_step_deg": cfg.tilt_step_deg, "tilt_angles_deg": [float(a) for a in angles],
                   "contrast": "protein dark (ice 0, protein negative)",
                   "config": dataclasses.asdict(cfg),
                   "tomograms": [{k: (os.path.relpath(v, out) if k in ("full", "even", "odd", "ground_truth",
                                                                       "defocus_file", "tilt_file") else v)
                                  for k, v in r.items()} for r in records]}
    atomic.write_text(out / ACQUISITION_FILE, json.dumps(acquisition, indent=2) + "\n")
    return records
