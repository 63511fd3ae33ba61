"""Rotations of training cubes and of their Fourier masks (refine step 3).

Coordinates are ``(z, y, x)``; the tilt axis is ``y`` and the missing wedge lies around ``kz``
in the ``(kz, kx)`` plane (see :mod:`isonet2core.imaging.wedge`). A rotation is a proper 3x3 matrix
``R`` acting on centred voxel coordinates, ``p_out = R @ p_in``; rotating a volume means
``R(v)(p) = v(R^T p)`` about the cube centre ``(n - 1) / 2``. Rotating a volume rotates its
Fourier transform by the same matrix, so the rotated volume is measured on ``R(M)(k) = M(R^T k)``.

Two families are used:

* **90-degree rotations** (:class:`CubeRotation`): the 24 proper rotations of a cube, exact
  axis permutations plus flips. A wedge symmetric about ``kz`` (``tilt_min = -tilt_max``) is
  left unchanged by exactly those rotations that map the ``z`` axis to ``+-z`` and the ``x``
  axis to ``+-x`` (then ``y`` goes to ``+-y`` too): the identity and the three 180-degree
  turns about ``z``, ``y`` and ``x`` (the Klein four-group). Every other rotation sends ``kz``
  or ``kx`` elsewhere and moves the wedge. Training with a rotation that keeps the wedge
  teaches nothing about the missing region (the loss term ``(1 - M) R(M)`` is empty), so
  refine draws from the ``24 - 4 = 20`` members of :data:`WEDGE_MOVING_ROTATIONS`. For an
  asymmetric tilt range the 180-degree turns about ``z`` and ``x`` mirror the wedge
  (``alpha -> -alpha``), a move of only ``|tilt_min + tilt_max|`` degrees; they stay excluded.
  (The IsoNet2 program lists 20 pairs of which only 18 are distinct; here the set is derived
  and ``tests/core/test_rotations.py`` checks it against real wedge masks.)
* **Arbitrary rotations** (``angle``, refine ``--random_rot_angle``: ``haar``, uniform on SO(3),
  drawn from unit quaternions; or ``uniform``, a uniformly random axis turned by an angle
  uniform in ``[0, 2 pi)``, as the IsoNet2 program draws them: more small turns), applied with
  ``grid_sample`` (batched), ``interpolation`` (refine ``--random_rot_interp``): ``trilinear``,
  voxels from outside the cube zero (the normalised mean), or ``nearest``, voxels from outside
  reflected back in (the IsoNet2 program's choice: no interpolation blur, no zero corners).
  Their Fourier masks are rotated with :func:`isonet2core.imaging.wedge.rotate_fourier_mask`.

Flips and Fourier masks: flipping a volume about its centre, ``v'(x) = v(n - 1 - x)``,
multiplies its DFT by a phase and maps ``k -> -k``, i.e. DFT index ``j -> (n - j) mod n``
(``torch.flip`` followed by a roll of one), not the plain index reversal ``j -> n - 1 - j``.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import List, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from isonet2core.config import ROTATION_ANGLES as ANGLES
from isonet2core.config import ROTATION_INTERPOLATIONS as INTERPOLATIONS
from isonet2core.imaging import wedge


@dataclass(frozen=True)
class CubeRotation:
    """A 90-degree rotation of a cube as an axis permutation plus flips.

    Output axis ``i`` (0 = z, 1 = y, 2 = x) is input axis ``perm[i]``, reversed when
    ``flips[i]``. As a matrix, ``R[i, perm[i]] = -1 if flips[i] else +1`` and
    ``p_out = R @ p_in`` for centred coordinates.
    """
    perm: Tuple[int, int, int]
    flips: Tuple[bool, bool, bool]

    def matrix(self) -> np.ndarray:
        """The proper rotation matrix of this rotation.

        Returns
        -------
        numpy.ndarray
            ``(3, 3)`` in ``(z, y, x)`` order.
        """
        m = np.zeros((3, 3))
        for i, (p, f) in enumerate(zip(self.perm, self.flips)):
            m[i, p] = -1.0 if f else 1.0
        return m


def _all_cube_rotations() -> Tuple[CubeRotation, ...]:
    out = []
    for perm in itertools.permutations(range(3)):
        for flips in itertools.product((False, True), repeat=3):
            rot = CubeRotation((perm[0], perm[1], perm[2]), (flips[0], flips[1], flips[2]))
            if np.linalg.det(rot.matrix()) > 0:  # proper rotations only (no reflections)
                out.append(rot)
    return tuple(out)


CUBE_ROTATIONS: Tuple[CubeRotation, ...] = _all_cube_rotations()
"""All 24 proper 90-degree rotations of a cube (the first is the identity)."""


def keeps_symmetric_wedge(rot: CubeRotation) -> bool:
    """Whether a rotation leaves a wedge about y in place.

    Parameters
    ----------
    rot : CubeRotation
        The rotation.

    Returns
    -------
    bool
        True when it maps the z axis to +-z and the x axis to +-x.
    """
    return rot.perm[0] == 0 and rot.perm[2] == 2


WEDGE_KEEPING_ROTATIONS: Tuple[CubeRotation, ...] = tuple(
    r for r in CUBE_ROTATIONS if keeps_symmetric_wedge(r))
"""The 4 rotations that leave a wedge about the y axis in place: identity and 180-degree turns
about z, y and x. Used as augmentations by ``denoise``, where the wedge must not move."""

WEDGE_MOVING_ROTATIONS: Tuple[CubeRotation, ...] = tuple(
    r for r in CUBE_ROTATIONS if not keeps_symmetric_wedge(r))
"""The 20 rotations that move the missing wedge; refine draws its 90-degree rotations here."""

Rotation = Union[CubeRotation, np.ndarray]
"""A :class:`CubeRotation` or an arbitrary proper rotation matrix ``(3, 3)`` in (z, y, x) order."""


def rotation_matrix(rot: Rotation) -> np.ndarray:
    """The matrix of any rotation.

    Parameters
    ----------
    rot : CubeRotation or numpy.ndarray
        A 90-degree rotation or a ``(3, 3)`` matrix.

    Returns
    -------
    numpy.ndarray
        ``(3, 3)``, ``(z, y, x)`` order.
    """
    return rot.matrix() if isinstance(rot, CubeRotation) else np.asarray(rot, dtype=np.float64)


def random_rotation_matrix(rng: np.random.Generator, angle: str = "haar") -> np.ndarray:
    """A random rotation.

    Parameters
    ----------
    rng : numpy.random.Generator
        Draws it.
    angle : str
        ``haar``: uniformly distributed on SO(3) (normalised Gaussian quaternion; the rotation
        angle ``t`` has density ``(1 - cos t) / pi`` on ``[0, pi]``, mean about 126 degrees);
        ``uniform``: a uniformly random axis turned by an angle uniform in ``[0, 2 pi)`` (the
        rotation angle uniform on ``[0, pi]``, mean 90 degrees).

    Returns
    -------
    numpy.ndarray
        ``(3, 3)``, ``(z, y, x)`` order.
    """
    if angle not in ANGLES:
        raise ValueError(f"angle must be one of {ANGLES}, got {angle!r}")
    if angle == "haar":
        q = rng.standard_normal(4)
        q /= np.linalg.norm(q)
    else:
        axis = rng.standard_normal(3)
        half = rng.uniform(0.0, np.pi)
        q = np.concatenate([[np.cos(half)], np.sin(half) * axis / np.linalg.norm(axis)])
    w, a, b, c = q
    return np.array([
        [1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w)],
        [2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w)],
        [2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b)],
    ])


def sample_rotations(n: int, rng: np.random.Generator, random_rot_weight: float,
                     choices: Sequence[CubeRotation] = WEDGE_MOVING_ROTATIONS,
                     angle: str = "haar") -> List[Rotation]:
    """Rotations of a batch: each an arbitrary one with probability ``random_rot_weight``, else a
    uniformly chosen member of ``choices``.

    Parameters
    ----------
    n : int
        How many.
    rng : numpy.random.Generator
        Draws them.
    random_rot_weight : float
        Probability of an arbitrary rotation, in [0, 1].
    choices : sequence of CubeRotation
        The 90-degree ones (default: the 20 wedge-moving rotations).
    angle : str
        How the arbitrary ones are drawn (:func:`random_rotation_matrix`).

    Returns
    -------
    list of Rotation
        ``n`` rotations.
    """
    if not 0.0 <= random_rot_weight <= 1.0:
        raise ValueError(f"random_rot_weight must be in [0, 1], got {random_rot_weight}")
    out: List[Rotation] = []
    for _ in range(n):
        if rng.random() < random_rot_weight:
            out.append(random_rotation_matrix(rng, angle))
        else:
            out.append(choices[int(rng.integers(len(choices)))])
    return out


def rotate_cube_90(x: torch.Tensor, rot: CubeRotation) -> torch.Tensor:
    """Rotate the last three axes of a real-space tensor exactly.

    Parameters
    ----------
    x : torch.Tensor
        ``(..., z, y, x)``.
    rot : CubeRotation
        The rotation.

    Returns
    -------
    torch.Tensor
        Rotated; shape permuted as ``rot.perm``.
    """
    lead = x.dim() - 3
    y = x.permute(*range(lead), *(lead + p for p in rot.perm))
    dims = [lead + i for i, f in enumerate(rot.flips) if f]
    return torch.flip(y, dims) if dims else y


def rotate_fourier_mask_90(mask_full: torch.Tensor, rot: CubeRotation) -> torch.Tensor:
    """Rotate a Fourier mask the way :func:`rotate_cube_90` rotates the volume it weights (flips
    map DFT index ``j -> (n - j) mod n``).

    Parameters
    ----------
    mask_full : torch.Tensor
        ``(..., kz, ky, kx)``, unshifted full FFT layout.
    rot : CubeRotation
        The rotation.

    Returns
    -------
    torch.Tensor
        The rotated mask, same layout.
    """
    lead = mask_full.dim() - 3
    y = mask_full.permute(*range(lead), *(lead + p for p in rot.perm))
    for i, f in enumerate(rot.flips):
        if f:
            d = lead + i
            y = torch.roll(torch.flip(y, (d,)), 1, d)
    return y


def _affine_theta(matrices_zyx: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` parameters ``(b, 3, 4)`` for output->input maps ``q = R^T p`` in (x, y, z)."""
    rev = [2, 1, 0]
    inv = matrices_zyx.transpose(1, 2)[:, rev][:, :, rev]  # R^T with axes reversed to (x, y, z)
    zeros = torch.zeros(inv.shape[0], 3, 1, dtype=inv.dtype, device=inv.device)
    return torch.cat([inv, zeros], dim=2)


def rotate_volumes_arbitrary(x: torch.Tensor, matrices_zyx: torch.Tensor,
                             interpolation: str = "trilinear") -> torch.Tensor:
    """Rotate cubes about their centres: trilinear interpolation with zeros outside, or nearest
    voxel with the outside reflected in.

    Parameters
    ----------
    x : torch.Tensor
        ``(b, c, z, y, x)``.
    matrices_zyx : torch.Tensor
        ``(b, 3, 3)``, acting on ``(z, y, x)`` coordinates.
    interpolation : str
        ``trilinear`` or ``nearest``.

    Returns
    -------
    torch.Tensor
        Shape of ``x``.
    """
    if x.dim() != 5 or matrices_zyx.shape != (x.shape[0], 3, 3):
        raise ValueError(f"expected x (b, c, z, y, x) and matrices (b, 3, 3), got "
                         f"{tuple(x.shape)} and {tuple(matrices_zyx.shape)}")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    theta = _affine_theta(matrices_zyx.to(device=x.device, dtype=torch.float32))
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    mode, padding = ("bilinear", "zeros") if interpolation == "trilinear" else ("nearest", "reflection")
    return F.grid_sample(x.float(), grid, mode=mode, padding_mode=padding, align_corners=False).to(x.dtype)


def rotate_volumes(x: torch.Tensor, rotations: Sequence[Rotation], interpolation: str = "trilinear") -> torch.Tensor:
    """Rotate each cube of a batch by its own rotation: 90-degree ones exactly, arbitrary ones in
    one batched pass (:func:`rotate_volumes_arbitrary`).

    Parameters
    ----------
    x : torch.Tensor
        ``(b, c, z, y, x)`` cubes.
    rotations : sequence of Rotation
        One per cube.
    interpolation : str
        Of the arbitrary rotations: ``trilinear`` or ``nearest``.

    Returns
    -------
    torch.Tensor
        Shape of ``x``.
    """
    if len(rotations) != x.shape[0]:
        raise ValueError(f"need one rotation per cube: {len(rotations)} for a batch of {x.shape[0]}")
    out = torch.empty_like(x)
    arbitrary = [i for i, r in enumerate(rotations) if not isinstance(r, CubeRotation)]
    for i, r in enumerate(rotations):
        if isinstance(r, CubeRotation):
            out[i] = rotate_cube_90(x[i], r)
    if arbitrary:
        mats = torch.as_tensor(np.stack([np.asarray(rotations[i]) for i in arbitrary]), dtype=torch.float32)
        out[arbitrary] = rotate_volumes_arbitrary(x[arbitrary], mats, interpolation)
    return out


def rotate_masks(mask_full: torch.Tensor, rotations: Sequence[Rotation]) -> torch.Tensor:
    """Rotated Fourier masks, one per rotation.

    Parameters
    ----------
    mask_full : torch.Tensor
        One mask ``(kz, ky, kx)`` or one per cube ``(b, kz, ky, kx)``, full FFT layout.
    rotations : sequence of Rotation
        One per cube.

    Returns
    -------
    torch.Tensor
        ``(b, kz, ky, kx)``.
    """
    masks = []
    for i, r in enumerate(rotations):
        m = mask_full if mask_full.dim() == 3 else mask_full[i]
        if isinstance(r, CubeRotation):
            masks.append(rotate_fourier_mask_90(m, r))
        else:
            masks.append(wedge.rotate_fourier_mask(m, r))
    return torch.stack(masks)
