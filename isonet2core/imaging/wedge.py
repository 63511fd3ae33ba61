"""Missing-wedge masks of single-axis tilt series, for any tilt range, and their rotation.

Convention (project contract): volumes are ``(z, y, x)``, the tilt axis is y and the beam at
0 degrees runs along z. A Fourier point ``(kz, ky, kx)`` is *measured* iff its angle

    ``alpha = degrees(atan(kz / kx))``   (in [-90, 90])

satisfies ``tilt_min_deg <= alpha <= tilt_max_deg``. The projection at tilt ``theta`` fills
the central plane containing ky and the direction ``(kz, kx) = (sin theta, cos theta)``.
``alpha`` of ``(-kz, -kx)`` equals that of ``(kz, kx)``, so the mask is Friedel-symmetric.
Points on the kz axis (``kx = 0``, ``kz != 0``) have ``alpha = +-90``, one direction, so they
are measured iff ``tilt_max_deg >= 90`` or ``tilt_min_deg <= -90``. DC is always measured.
On the Nyquist planes of even sizes (frequency -0.5 = +0.5) a point is measured only when it
is for both signs of that coordinate.
Masks hold 1 (measured) and 0 (missing). Angles are computed in cycles/voxel, i.e. physical
angles for non-cubic volumes too (the voxel is isotropic).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from isonet2core.config import check_tilt_range
from isonet2core.imaging import fourier

_ANGLE_TOL_DEG = 1e-9


def measured_fraction(tilt_min_deg: float, tilt_max_deg: float) -> float:
    """Fraction of Fourier directions measured, ``(tilt_max_deg - tilt_min_deg) / 180``.

    Equals the measured fraction of voxels of any ball centred on DC, since the mask only
    depends on the direction in the kz-kx plane.

    Parameters
    ----------
    tilt_min_deg, tilt_max_deg : float
        The tilt range (degrees).

    Returns
    -------
    float
        In [0, 1].
    """
    check_tilt_range(tilt_min_deg, tilt_max_deg)
    return (float(tilt_max_deg) - float(tilt_min_deg)) / 180.0


def wedge_mask(shape: Sequence[int], tilt_min_deg: float, tilt_max_deg: float, *,
               rfft: bool = False, device: Optional[torch.device] = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Missing-wedge mask (1 measured, 0 missing) of a volume; independent of ky.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    tilt_min_deg, tilt_max_deg : float
        The tilt range (degrees, tilt axis y), any within [-90, 90], asymmetric ones such as
        (-50, 40) included.
    rfft : bool
        The rfft layout (the full mask's first ``nx // 2 + 1`` x columns) instead of the full.
    device, dtype
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        ``fourier.fft_shape(shape, rfft)``, unshifted FFT layout (DC at index 0).
    """
    check_tilt_range(tilt_min_deg, tilt_max_deg)
    kz, _, kx = fourier.freq_grid(shape, rfft=rfft, device=device, dtype=torch.float64)
    measured = _measured(kz, kx, tilt_min_deg, tilt_max_deg)
    # Nyquist planes of even sizes: frequency -0.5 is also +0.5, so the sign is ambiguous; such
    # a point is measured only if it is for both signs (keeps the grid mask Friedel-symmetric
    # and the rfft mask equal to the cropped full mask)
    nyquist_z = kz.abs() == 0.5
    nyquist_x = kx.abs() == 0.5
    measured = measured & (~nyquist_z | _measured(-kz, kx, tilt_min_deg, tilt_max_deg))
    measured = measured & (~nyquist_x | _measured(kz, -kx, tilt_min_deg, tilt_max_deg))
    nz, ny, nxf = fourier.fft_shape(shape, rfft)
    return measured.expand(nz, ny, nxf).to(dtype).contiguous()


def _measured(kz: torch.Tensor, kx: torch.Tensor, tilt_min_deg: float,
              tilt_max_deg: float) -> torch.Tensor:
    """The convention of the module docstring on broadcast ``kz``/``kx`` grids (bool)."""
    safe_kx = torch.where(kx == 0, torch.ones_like(kx), kx)
    alpha = torch.rad2deg(torch.atan(kz / safe_kx))
    inside = (alpha >= tilt_min_deg - _ANGLE_TOL_DEG) & (alpha <= tilt_max_deg + _ANGLE_TOL_DEG)
    kz_axis_measured = bool(tilt_max_deg >= 90.0 or tilt_min_deg <= -90.0)
    on_kz_axis = (kx == 0) & (kz != 0)
    inside = torch.where(on_kz_axis, torch.full_like(inside, kz_axis_measured), inside)
    return inside | ((kx == 0) & (kz == 0))  # DC

def rotate_fourier_mask(mask_full: torch.Tensor, rotation_matrix_zyx) -> torch.Tensor:
    """Rotate a Fourier-space mask about DC with trilinear interpolation.

    The result is ``M'(k) = M(R^T k)``: the mask is rotated the same way a real-space rotation
    ``v'(r) = v(R^T r)`` (content at ``r`` moved to ``R r``) rotates the volume's Fourier
    transform. Implementation: fftshift, sample the input at ``R^T k`` for every output frequency
    ``k`` (in cycles/voxel, so non-cubic grids rotate physically), trilinear, zero outside the
    grid, inverse shift. Rotations mapping the grid onto itself (90-degree turns of a cube of
    odd size) are exact.

    Parameters
    ----------
    mask_full : torch.Tensor
        Real ``(z, y, x)`` in the unshifted full FFT layout.
    rotation_matrix_zyx : array-like
        ``(3, 3)`` rotation ``R`` acting on ``(z, y, x)`` coordinate vectors.

    Returns
    -------
    torch.Tensor
        The rotated mask, layout, shape and dtype of ``mask_full``.
    """
    if mask_full.dim() != 3:
        raise ValueError(f"expected a mask (z, y, x), got shape {tuple(mask_full.shape)}")
    rot = torch.as_tensor(np.asarray(rotation_matrix_zyx, dtype=np.float64))
    if rot.shape != (3, 3):
        raise ValueError(f"expected a 3x3 rotation matrix, got shape {tuple(rot.shape)}")
    if not torch.allclose(rot @ rot.T, torch.eye(3, dtype=torch.float64), atol=1e-6) \
            or not math.isclose(float(torch.linalg.det(rot)), 1.0, abs_tol=1e-6):
        raise ValueError("rotation_matrix_zyx is not a proper rotation (orthogonal, det +1)")
    shape = tuple(mask_full.shape)
    device = mask_full.device
    # centred frequencies (cycles/voxel) of the fftshifted output grid, as (z, y, x) vectors
    axes = [torch.fft.fftshift(torch.fft.fftfreq(n, dtype=torch.float64, device=device)) for n in shape]
    kz, ky, kx = torch.meshgrid(*axes, indexing="ij")
    k = torch.stack([kz, ky, kx], dim=-1)                      # (z, y, x, 3)
    src = k @ rot.to(device)                                   # rows: (R^T k)^T = k^T R
    sizes = torch.tensor(shape, dtype=torch.float64, device=device)
    centre = torch.floor(sizes / 2)                            # DC index after fftshift
    index = src * sizes + centre                               # source index (z, y, x)
    # grid_sample wants (x, y, z) in [-1, 1] with align_corners=True: -1 <-> 0, 1 <-> n - 1
    norm = 2.0 * index / torch.clamp(sizes - 1, min=1) - 1.0
    grid = norm.flip(-1).unsqueeze(0).to(torch.float32 if mask_full.dtype != torch.float64 else torch.float64)
    shifted = torch.fft.fftshift(mask_full, dim=(0, 1, 2))
    work = shifted.to(grid.dtype)[None, None]
    out = F.grid_sample(work, grid, mode="bilinear", padding_mode="zeros", align_corners=True)[0, 0]
    return torch.fft.ifftshift(out, dim=(0, 1, 2)).to(mask_full.dtype)
