"""Where IsoNet2 samples: mask boundaries (IMOD models) and subtomogram centres (3D coordinates).

Both are matched to the tomograms by tsId (:func:`isonet2scipion.ctf_inputs.plain_ts_id`, the
one rule) and reach the core as STAR columns:

* ``rlnMaskBoundary``: an IMOD model (``.mod``) of the lamella outline per tomogram, read by
  ``isonet2 make-mask`` as the official IsoNet2 reads it (:mod:`isonet2core.io.boundary`). The
  make-mask form takes a folder; a model belongs to the tomogram whose tsId is its file name,
  or starts its file name followed by ``_``, ``.`` or ``-`` (``TS_01.mod``,
  ``TS_01_boundary.mod``; the longest tsId wins).
* ``rlnBoxFile``: the centres of the training cubes, one ``x y z`` line per centre in voxels of
  the tomogram (0-based, as the core's ``read_box_file`` and the official IsoNet2 read them),
  from a ``SetOfCoordinates3D``. Scipion stores a coordinate relative to its tomogram's origin
  (``getPosition(SCIPION)``, in pixels of the coordinates' sampling rate); the centre is that
  position scaled to the tomogram's sampling rate and referred to the tomogram's corner by the
  tomogram's own origin (``getShiftsFromOrigin``): tomo's rule for coordinates picked at another
  binning (its "extract coordinates" protocol). Coordinates outside the tomogram are refused;
  those nearer to a face than half a cube are moved inwards to the nearest centre whose cube
  fits (the summary says how many).
"""
import hashlib
import json
import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from isonet2core.io import star
from isonet2scipion import ctf_inputs

BOUNDARY_SUFFIX = ".mod"
BOX_SUFFIX = "_centres.txt"
_SEPARATORS = "_.-"


# ------------------------------------------------------------------ mask boundaries
def ts_id_of_file(stem: str, ts_ids: Iterable[str]) -> Optional[str]:
    """The tsId a file named ``stem`` belongs to: equal to it, else the longest tsId that starts
    it followed by ``_``, ``.`` or ``-``; None when none does."""
    ids = sorted(set(ts_ids), key=len, reverse=True)
    if stem in ids:
        return stem
    for ts_id in ids:
        if stem.startswith(ts_id) and stem[len(ts_id)] in _SEPARATORS:
            return ts_id
    return None


def boundary_files(folder: Optional[str], ts_ids: Sequence[str]) -> Tuple[Dict[str, str], List[str]]:
    """``({tsId: absolute path of its .mod}, errors)`` for the ``.mod`` files of ``folder``.

    Tomograms without a model keep their plain mask. Errors: the folder does not exist, no
    model matches any tomogram, or a tomogram has several models.
    """
    if not folder:
        return {}, []
    if not os.path.isdir(folder):
        return {}, [f"the mask boundary folder {folder} does not exist"]
    found: Dict[str, List[str]] = {}
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(BOUNDARY_SUFFIX))
    for name in names:
        ts_id = ts_id_of_file(name[:-len(BOUNDARY_SUFFIX)], ts_ids)
        if ts_id is not None:
            found.setdefault(ts_id, []).append(os.path.abspath(os.path.join(folder, name)))
    errors = [f"tomogram {ts_id} has several mask boundaries in {folder}: "
              f"{', '.join(os.path.basename(p) for p in paths)}"
              for ts_id, paths in sorted(found.items()) if len(paths) > 1]
    if not found:
        errors.append(f"no IMOD model (.mod) in {folder} is named after a tomogram's tsId "
                      f"({', '.join(list(ts_ids)[:5])}{', ...' if len(ts_ids) > 5 else ''}); "
                      f"found: {', '.join(names[:5]) or 'none'}")
    return {ts_id: paths[0] for ts_id, paths in found.items()}, errors


def boundary_columns(paths: Dict[str, str]) -> Dict[str, Dict[str, str]]:
    """``{tsId: {rlnMaskBoundary: path}}``: the STAR cells of :func:`boundary_files`."""
    return {ts_id: {star.MASK_BOUNDARY: path} for ts_id, path in sorted(paths.items())}


# ------------------------------------------------------------------ subtomogram centres
def coordinate_positions(coord_set) -> Dict[str, np.ndarray]:
    """``{plain tsId: float (n, 3) x, y, z}``: Scipion positions (``getPosition(SCIPION)``,
    relative to the tomogram's origin, pixels of the set's sampling rate), in set order."""
    from tomo import constants

    by_ts: Dict[str, list] = {}
    for coord in coord_set.iterItems(orderBy="id"):
        ts_id = ctf_inputs.plain_ts_id(coord.getTomoId() or "")
        by_ts.setdefault(ts_id, []).append(coord.getPosition(constants.SCIPION))
    return {ts_id: np.asarray(xyz, dtype=np.float64).reshape(-1, 3) for ts_id, xyz in by_ts.items()}


def voxel_positions(positions: np.ndarray, coord_sampling: float, tomo) -> np.ndarray:
    """Positions of :func:`coordinate_positions` as ``x, y, z`` voxels of ``tomo`` counted from
    its corner (the first voxel's centre is 0): scaled by the sampling ratio, then shifted by
    the tomogram's origin."""
    sampling = float(tomo.getSamplingRate())
    origin = np.asarray(tomo.getShiftsFromOrigin(), dtype=np.float64) / sampling
    return np.asarray(positions, dtype=np.float64) * (float(coord_sampling) / sampling) - origin


def box_centres(voxels: np.ndarray, shape_zyx: Sequence[int],
                cube_size: int) -> Tuple[np.ndarray, int, int]:
    """``(centres, moved, outside)``: int ``(n, 3)`` x, y, z centres whose cube of
    ``cube_size`` fits the tomogram (the core's ``centre_bounds``: from ``cube // 2`` to
    ``n - cube + cube // 2`` per axis), how many were moved inwards to fit, and how many
    voxels lie outside the tomogram (not moved: :func:`box_plan` refuses them)."""
    xyz = np.rint(np.asarray(voxels, dtype=np.float64)).astype(np.int64).reshape(-1, 3)
    size_xyz = np.asarray(list(shape_zyx)[::-1], dtype=np.int64)
    outside = int(np.any((xyz < 0) | (xyz >= size_xyz), axis=1).sum())
    half = int(cube_size) // 2
    low, high = np.full(3, half), size_xyz - int(cube_size) + half
    centres = np.clip(xyz, low, high)
    moved = int(np.any(centres != xyz, axis=1).sum())
    return centres, moved, outside


def box_plan(coord_set, tomos: Dict[str, object], cube_size: int,
             shapes: Dict[str, Sequence[int]]) -> Tuple[Dict[str, np.ndarray], List[str], List[str]]:
    """``({tsId: centres}, errors, notes)`` of a set of coordinates for the tomograms ``tomos``
    (``{plain tsId: Tomogram}``, ``shapes[tsId]`` their ``(z, y, x)``).

    Errors: no coordinate on any tomogram, coordinates outside their tomogram. Notes (for the
    summary): tomograms without coordinates (their cubes are drawn at random, in the mask),
    coordinates of other tomograms (ignored), coordinates moved inwards.
    """
    positions = coordinate_positions(coord_set)
    sampling = coord_set.getSamplingRate()
    centres, errors, notes = {}, [], []
    for ts_id, tomo in sorted(tomos.items()):
        if ts_id not in positions:
            continue
        voxels = voxel_positions(positions[ts_id], sampling, tomo)
        centres[ts_id], moved, outside = box_centres(voxels, shapes[ts_id], cube_size)
        if outside:
            errors.append(f"{outside} of the {len(voxels)} coordinates of {ts_id} lie outside the "
                          f"tomogram of {tuple(shapes[ts_id])[::-1]} (x, y, z) voxels (coordinates at "
                          f"{sampling} Å/px, tomogram at {tomo.getSamplingRate()} Å/px)")
        if moved:
            notes.append(f"{ts_id}: {moved} of {len(voxels)} coordinates moved inwards so that "
                         f"their cube of {cube_size} fits the tomogram")
    if not centres:
        errors.append(f"no coordinate belongs to the tomograms (coordinates on "
                      f"{', '.join(sorted(positions)[:5]) or 'none'}; tomograms "
                      f"{', '.join(sorted(tomos)[:5])})")
    without = sorted(set(tomos) - set(positions))
    if without and centres:
        notes.append(f"no coordinates on {', '.join(without)}: cubes drawn at random there")
    others = sorted(set(positions) - set(tomos))
    if others:
        notes.append(f"coordinates of tomograms not in the input ignored: {', '.join(others)}")
    return centres, errors, notes


def box_file_path(folder: str, ts_id: str) -> str:
    """The box file of a tomogram in ``folder`` (absolute)."""
    return os.path.abspath(os.path.join(folder, f"{ts_id}{BOX_SUFFIX}"))


def write_box_file(path: str, centres: np.ndarray) -> str:
    """Write ``x y z`` lines (voxels) to ``path`` (through a temporary, then renamed)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write("# x y z: subtomogram centres in voxels of the tomogram (from Scipion coordinates)\n")
        for x, y, z in np.asarray(centres, dtype=np.int64).reshape(-1, 3):
            f.write(f"{x} {y} {z}\n")
    os.replace(tmp, path)
    return path


def box_columns(folder: str, ts_ids: Iterable[str]) -> Dict[str, Dict[str, str]]:
    """``{tsId: {rlnBoxFile: path}}``: the STAR cells of the box files in ``folder``."""
    return {ts_id: {star.BOX_FILE: box_file_path(folder, ts_id)} for ts_id in sorted(ts_ids)}


def centres_digest(centres: Dict[str, np.ndarray]) -> str:
    """A short hash of every centre: a step argument that changes when the coordinates do."""
    text = json.dumps({k: np.asarray(v).tolist() for k, v in sorted(centres.items())})
    return hashlib.sha1(text.encode()).hexdigest()[:16]
