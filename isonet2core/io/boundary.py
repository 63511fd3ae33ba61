"""The mask boundary of the official IsoNet2 (``rlnMaskBoundary``): an IMOD model of the lamella.

A STAR row may name an IMOD model file (``.mod``) in ``rlnMaskBoundary``; ``make-mask`` then
multiplies the density/std mask by the region it outlines, read as the official ``make_mask``
reads it (its ``boundary_mask``, on the points ``model2point`` lists, every object and contour
in file order):

* points are ``x y z`` in voxels of the tomogram (IMOD index coordinates);
* when the last two points lie at least :data:`MIN_Z_SPAN` slices apart in z, they give the z
  range (from the lower to the higher z, clipped to the tomogram) and the points before them
  the outline in x/y; otherwise every point belongs to the outline and all z slices are kept;
* the outline is a polygon in x/y (a voxel is inside when its centre is), the same on every
  kept z slice; no point before the two z points means no outline (the whole slab is kept);
  one or two outline points are refused (no polygon).

The official program applies the rule on its 2x binned grid (``MIN_Z_SPAN`` is 5 binned
slices there); here it is applied at the tomogram's own voxels, so the edges of the region are
sharper by up to one binned voxel. The model is read with teamtomo's ``imodmodel`` (no IMOD
needed).
"""
from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from isonet2core.io.output_names import PathLike

logger = logging.getLogger(__name__)

MIN_Z_SPAN = 10.0   # voxels between the last two points' z for them to give the z range


def read_boundary_points(path: PathLike) -> Tuple[np.ndarray, Tuple[int, int, int]]:
    """The points of an IMOD model, every object and contour in file order.

    Parameters
    ----------
    path : path
        The ``.mod`` file.

    Returns
    -------
    (numpy.ndarray, tuple of int)
        float64 ``(n, 3)`` points ``x, y, z`` (voxels), and the image size ``(x, y, z)`` the
        model header records (zeros when it records none).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Not an IMOD model (naming the file), or ``imodmodel`` is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mask boundary {path} (rlnMaskBoundary) not found")
    try:
        from imodmodel import ImodModel
    except ImportError:
        raise ValueError(f"reading the mask boundary {path} needs the imodmodel package "
                         f"(pip install imodmodel)") from None
    try:
        model = ImodModel.from_file(path)
    except Exception as exc:   # the parser raises several kinds on a file that is no model
        raise ValueError(f"mask boundary {path} (rlnMaskBoundary) is not an IMOD model (.mod): "
                         f"{exc}") from None
    parts = [np.asarray(c.points, dtype=np.float64).reshape(-1, 3)
             for obj in model.objects for c in obj.contours]
    points = np.concatenate(parts) if parts else np.zeros((0, 3))
    size = (int(model.header.xmax), int(model.header.ymax), int(model.header.zmax))
    return points, size


def _z_range_and_outline(points: np.ndarray, nz: int) -> Tuple[int, int, np.ndarray]:
    """``(z0, z1, outline)``: the slices ``z0 <= z < z1`` kept and the x/y polygon points."""
    z_a, z_b = points[-2, 2], points[-1, 2]
    if abs(z_b - z_a) < MIN_Z_SPAN:
        return 0, nz, points[:, :2]
    z0 = int(max(min(z_a, z_b), 0.0))
    z1 = int(min(max(z_a, z_b), float(nz)))
    return z0, z1, points[:-2, :2]


@dataclass(frozen=True)
class BoundaryRegion:
    """The region a mask boundary keeps, without a whole-volume array: the z slices
    ``z0 <= z < z1`` and, on each of them, the bool ``(y, x)`` ``plane`` (``shape`` is the
    tomogram's ``(z, y, x)``, ``source`` the model file when it came from one)."""
    shape: Tuple[int, int, int]
    z0: int
    z1: int
    plane: np.ndarray
    source: Optional[Path] = None

    def planes(self, z0: int, z1: int) -> np.ndarray:
        """The region's z planes ``z0 .. z1 - 1``.

        Parameters
        ----------
        z0, z1 : int
            Plane range of the tomogram.

        Returns
        -------
        numpy.ndarray
            uint8 0/1 ``(z1 - z0, y, x)``.
        """
        out = np.zeros((z1 - z0,) + self.shape[1:], dtype=np.uint8)
        lo, hi = max(z0, self.z0), min(z1, self.z1)
        if hi > lo:
            out[lo - z0:hi - z0] = self.plane
        return out


def boundary_region(shape: Sequence[int], points: np.ndarray) -> BoundaryRegion:
    """The region a mask boundary keeps (rule: module documentation), as a z range and one plane.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the tomogram.
    points : numpy.ndarray
        ``(n, 3)`` points ``x, y, z`` in voxels, in the model's order.

    Returns
    -------
    BoundaryRegion
        The z range and the ``(y, x)`` plane.

    Raises
    ------
    ValueError
        Fewer than 2 points, an outline of 1 or 2 points, or a region that keeps no voxel.
    """
    from matplotlib.path import Path as PolygonPath

    nz, ny, nx = (int(n) for n in shape)
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if len(pts) < 2:
        raise ValueError(f"{len(pts)} point(s): too few to define a boundary (an outline in x/y, "
                         f"and/or two last points giving the z range)")
    z0, z1, outline = _z_range_and_outline(pts, nz)
    if len(outline) == 0:
        plane = np.ones((ny, nx), dtype=bool)
    elif len(outline) <= 2:
        raise ValueError(f"{len(outline)} outline point(s) before the z range cannot make a polygon "
                         f"(give at least 3, or none to keep the whole slab)")
    else:
        y, x = np.mgrid[:ny, :nx]
        inside = PolygonPath(outline).contains_points(np.column_stack([x.ravel(), y.ravel()]))
        plane = inside.reshape(ny, nx)
    if z1 <= z0 or not plane.any():
        raise ValueError(f"the boundary keeps no voxel of the tomogram of shape {(nz, ny, nx)} "
                         f"(z, y, x): z range {z0} to {z1}, outline {outline.tolist()}")
    return BoundaryRegion((nz, ny, nx), z0, z1, plane)


def boundary_mask(shape: Sequence[int], points: np.ndarray) -> np.ndarray:
    """The region a mask boundary keeps (rule: module documentation), as a whole volume.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the tomogram.
    points : numpy.ndarray
        ``(n, 3)`` points ``x, y, z`` in voxels, in the model's order.

    Returns
    -------
    numpy.ndarray
        uint8 0/1 of ``shape`` (:meth:`BoundaryRegion.planes` of :func:`boundary_region`).

    Raises
    ------
    ValueError
        Fewer than 2 points, an outline of 1 or 2 points, or a region that keeps no voxel.
    """
    region = boundary_region(shape, points)
    return region.planes(0, region.shape[0])


def region_of(path: PathLike, shape: Sequence[int]) -> BoundaryRegion:
    """The region an IMOD model file keeps in a tomogram (:func:`boundary_region`).

    Parameters
    ----------
    path : path
        The ``.mod`` file (a STAR's ``rlnMaskBoundary``).
    shape : sequence of int
        ``(z, y, x)`` of the tomogram.

    Returns
    -------
    BoundaryRegion
        The z range and the ``(y, x)`` plane.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file.
    """
    points, size = read_boundary_points(path)
    nz, ny, nx = (int(n) for n in shape)
    if any(size) and size != (nx, ny, nz):
        logger.warning("mask boundary %s was drawn on an image of %s (x, y, z) voxels, the "
                       "tomogram has %s: its points are read as voxels of the tomogram",
                       path, size, (nx, ny, nz))
    try:
        return dataclasses.replace(boundary_region(shape, points), source=Path(path))
    except ValueError as exc:
        raise ValueError(f"mask boundary {path} (rlnMaskBoundary): {exc}") from None


def boundary_of(path: PathLike, shape: Sequence[int]) -> np.ndarray:
    """The region an IMOD model file keeps in a tomogram (:func:`boundary_mask`).

    Parameters
    ----------
    path : path
        The ``.mod`` file (a STAR's ``rlnMaskBoundary``).
    shape : sequence of int
        ``(z, y, x)`` of the tomogram.

    Returns
    -------
    numpy.ndarray
        uint8 0/1 of ``shape``.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file.
    """
    region = region_of(path, shape)
    return region.planes(0, region.shape[0])
