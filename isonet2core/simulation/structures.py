"""Macromolecules from real atomic models: the heavy atoms of seven PDB entries shipped in
``data/structures.npz`` (``bench/assets`` rebuilds it) and the particle species the lamella
simulator (:mod:`isonet2core.simulation.lamella`) crowds its slab with, built from them (:data:`SPECIES`).
Coordinates in A, ``(n, 3)``, centred (:func:`load_structures`).
"""
from __future__ import annotations

import math
from functools import cache, lru_cache
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np
from scipy.spatial.transform import Rotation

STRUCTURES_FILE = Path(__file__).parent / "data" / "structures.npz"


@lru_cache(maxsize=1)
def load_structures() -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """The shipped atomic models.

    Returns
    -------
    dict
        Key -> ``(xyz, element)``: float64 ``(n, 3)`` Angstrom, centred, in ``(z, y, x)``
        order, and int ``(n,)`` indices into :func:`element_names`.
    """
    if not STRUCTURES_FILE.is_file():
        raise FileNotFoundError(f"atomic models {STRUCTURES_FILE} are missing (rebuild them with "
                                "python -m bench.assets.build_structures)")
    with np.load(STRUCTURES_FILE) as data:
        return {str(k): (data[f"{k}_xyz"].astype(np.float64) / 10.0, data[f"{k}_element"].astype(np.int64))
                for k in data["keys"]}


def element_names() -> Tuple[str, ...]:
    """The element symbols that the element indices of :func:`load_structures` refer to.

    Returns
    -------
    tuple of str
        Symbols by index.
    """
    with np.load(STRUCTURES_FILE) as data:
        return tuple(str(e) for e in data["elements"])


def radius(xyz: np.ndarray) -> float:
    """The largest distance of atoms from their centroid.

    Parameters
    ----------
    xyz : numpy.ndarray
        ``(n, 3)`` Angstrom.

    Returns
    -------
    float
        Angstrom.
    """
    return float(np.sqrt(((xyz - xyz.mean(0)) ** 2).sum(1)).max())


def _cluster(keys: Sequence[str], semi_axes: Sequence[float], rng: np.random.Generator):
    """Chains packed into an ellipsoid: random orientations, positions drawn until the centres
    keep 0.8 of the sum of their radii apart (compact, without gross overlap)."""
    structures = load_structures()
    xyz_all: List[np.ndarray] = []
    el_all: List[np.ndarray] = []
    centres: List[np.ndarray] = []
    radii: List[float] = []
    for key in keys:
        xyz, el = structures[key]
        r = 0.55 * radius(xyz)
        for _ in range(4000):
            c = rng.uniform(-1, 1, 3) * np.asarray(semi_axes)
            if (c / np.asarray(semi_axes)) @ (c / np.asarray(semi_axes)) > 1:
                continue
            if all(np.linalg.norm(c - c2) > 0.8 * (r + r2) for c2, r2 in zip(centres, radii)):
                break
        centres.append(c)
        radii.append(r)
        xyz_all.append(Rotation.random(random_state=rng).apply(xyz) + c)
        el_all.append(el)
    xyz = np.concatenate(xyz_all)
    return xyz - xyz.mean(0), np.concatenate(el_all)


def _symmetric(key: str, rotations: Rotation, offset: Sequence[float]):
    xyz, el = load_structures()[key]
    moved = xyz + np.asarray(offset, dtype=np.float64)
    out = np.concatenate([rotations[i].apply(moved) for i in range(len(rotations))])
    return out - out.mean(0), np.tile(el, len(rotations))


def _double_ring(key: str, n: int, radius: float, half_height: float):
    ring = Rotation.from_euler("z", (np.arange(n) * 360.0 / n)[:, None], degrees=True)
    xyz, el = load_structures()[key]
    top = np.concatenate([ring[i].apply(xyz + (radius, 0, half_height)) for i in range(n)])
    bottom = Rotation.from_euler("x", 180, degrees=True).apply(top)
    out = np.concatenate([top, bottom])
    return out - out.mean(0), np.tile(el, 2 * n)


@cache
def species_atoms(name: str) -> Tuple[np.ndarray, np.ndarray]:
    """Atoms of one particle species, in its own frame.

    Parameters
    ----------
    name : str
        A key of :data:`SPECIES`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(xyz (n, 3)`` Angstrom centred, element indices ``(n,))``.
    """
    rng = np.random.default_rng(sum(map(ord, name)))     # the same assembly in every tomogram
    if name == "ribosome":
        return _cluster(["3kpr", "3kpr", "3kpr", "3kpr", "6msm", "6msm", "6msm", "3pwp", "3pwp",
                         "1bd2", "1bd2", "19hc", "19hc", "1a28", "1a28"], (125, 110, 100), rng)
    if name == "spliceosome":
        return _cluster(["3kpr", "3kpr", "6msm", "6msm", "3pwp", "1bd2", "1bd2", "19hc", "1a28",
                         "1a28", "adk"], (150, 95, 80), rng)
    if name == "chaperonin":
        return _double_ring("1a28", 7, 52.0, 38.0)
    if name == "apoferritin":
        return _symmetric("adk", Rotation.create_group("O"), (0.0, 0.0, 46.0))
    if name in load_structures():
        return load_structures()[name]
    raise ValueError(f"unknown species {name!r}")


#: species and how many of each per 192 x 192 pixel area at 8 A (about 2.4e9 A^3 of slab)
SPECIES: Dict[str, int] = {"ribosome": 14, "spliceosome": 6, "chaperonin": 10, "apoferritin": 12,
                           "3kpr": 10, "6msm": 12, "3pwp": 14, "1bd2": 14, "19hc": 20, "1a28": 24,
                           "adk": 30}
FILAMENTS_PER_AREA = 3
ACTIN_RISE_A, ACTIN_TWIST_DEG, ACTIN_RADIUS_A = 27.5, -166.7, 22.0


def axis_to(direction: np.ndarray) -> Rotation:
    """The rotation taking the x axis onto a direction.

    Parameters
    ----------
    direction : numpy.ndarray
        ``(3,)`` in ``(z, y, x)`` order, non-zero.

    Returns
    -------
    scipy.spatial.transform.Rotation
        Maps ``(0, 0, 1)`` onto ``direction / |direction|``.
    """
    a = np.array([0.0, 0.0, 1.0])
    axis = np.cross(a, direction)
    s, c = np.linalg.norm(axis), float(a @ direction)
    if s < 1e-9:
        return Rotation.identity() if c > 0 else Rotation.from_rotvec([0.0, math.pi, 0.0])
    return Rotation.from_rotvec(axis / s * math.atan2(s, c))


def filament(length_a: float):
    """An actin-like helical filament along z (rise 27.5 A, twist -166.7 deg).

    Parameters
    ----------
    length_a : float
        About this long (Angstrom).

    Returns
    -------
    tuple of numpy.ndarray
        ``(xyz (n, 3)`` Angstrom centred, element indices ``(n,))``.
    """
    xyz, el = load_structures()["1a28"]
    n = max(2, int(length_a / ACTIN_RISE_A))
    parts = []
    for i in range(n):
        rot = Rotation.from_euler("z", i * ACTIN_TWIST_DEG, degrees=True)
        parts.append(rot.apply(xyz + (ACTIN_RADIUS_A, 0.0, 0.0)) + (0.0, 0.0, i * ACTIN_RISE_A))
    out = np.concatenate(parts)
    return out - out.mean(0), np.tile(el, n)
