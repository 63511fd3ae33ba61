"""Frequency grids of 3D volumes: the one place where Fourier coordinates are built.

Layout (the numpy/torch FFT convention, fixed project-wide):

* volumes are ``(z, y, x)``; their Fourier transforms keep that axis order;
* DC sits at index 0, no shift; index ``i`` of an axis of length ``n`` is frequency
  ``i / n`` for ``i < ceil(n / 2)`` and ``(i - n) / n`` above (``torch.fft.fftfreq``);
* the ``rfft`` layout (``torch.fft.rfftn`` over the three axes) keeps only the non-negative
  x frequencies: its shape is ``(nz, ny, nx // 2 + 1)``;
* frequencies are in cycles/voxel (Nyquist 0.5); spatial frequency in 1/Angstrom is
  cycles/voxel divided by the pixel size in Angstrom.

Every other module (CTF, wedge, deconvolution, training targets, metrics) asks this module
for its grids instead of building its own.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import torch

Shape3 = Tuple[int, int, int]


def _check_shape(shape: Sequence[int]) -> Shape3:
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or any(s < 1 for s in shape):
        raise ValueError(f"expected a 3D volume shape (z, y, x) of positive sizes, got {shape}")
    return shape  # type: ignore[return-value]


def fft_shape(shape: Sequence[int], rfft: bool = False) -> Shape3:
    """Shape of the Fourier transform of a real ``(z, y, x)`` volume.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    rfft : bool
        The rfft layout instead of the full FFT.

    Returns
    -------
    tuple of int
        The full FFT: ``shape``; rfft: ``(nz, ny, nx // 2 + 1)``.
    """
    nz, ny, nx = _check_shape(shape)
    return (nz, ny, nx // 2 + 1) if rfft else (nz, ny, nx)


def freq_grid(shape: Sequence[int], *, rfft: bool = False,
              device: Optional[torch.device] = None,
              dtype: torch.dtype = torch.float32) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Frequencies ``(kz, ky, kx)`` of a ``(z, y, x)`` volume, as broadcastable axes.

    DC at index 0, no shift; values in [-0.5, 0.5) cycles/voxel.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    rfft : bool
        The rfft layout (``nx // 2 + 1`` x frequencies) instead of the full one.
    device, dtype
        Of the returned tensors.

    Returns
    -------
    tuple of torch.Tensor
        ``kz (nz, 1, 1)``, ``ky (1, ny, 1)``, ``kx (1, 1, nx')`` (cycles/voxel), broadcasting to
        ``fft_shape(shape, rfft)``.
    """
    nz, ny, nx = _check_shape(shape)
    kz = torch.fft.fftfreq(nz, device=device, dtype=dtype).reshape(nz, 1, 1)
    ky = torch.fft.fftfreq(ny, device=device, dtype=dtype).reshape(1, ny, 1)
    if rfft:
        kx = torch.fft.rfftfreq(nx, device=device, dtype=dtype)
    else:
        kx = torch.fft.fftfreq(nx, device=device, dtype=dtype)
    return kz, ky, kx.reshape(1, 1, -1)


def radial_freq(shape: Sequence[int], *, rfft: bool = False,
                device: Optional[torch.device] = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``|k|`` on the (r)FFT grid of a ``(z, y, x)`` volume.

    Divide by the pixel size (Angstrom) to get 1/A.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    rfft : bool
        The rfft layout instead of the full one.
    device, dtype
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        ``fft_shape(shape, rfft)``, cycles/voxel: 0 at DC, 0.5 at Nyquist along an axis, up to
        ``sqrt(3) / 2`` in the corners.
    """
    kz, ky, kx = freq_grid(shape, rfft=rfft, device=device, dtype=dtype)
    return torch.sqrt(kz * kz + ky * ky + kx * kx)


def shell_index(shape: Sequence[int], *, rfft: bool = False,
                device: Optional[torch.device] = None) -> torch.Tensor:
    """Fourier shell of every frequency: ``floor(|k| n)``, ``n`` the edge along x (of a cube,
    its edge).

    Shell 0 holds DC, shell ``s`` the frequencies with ``s <= |k| n < s + 1``; shells up to
    ``n // 2`` lie inside the Nyquist sphere, higher ones (up to ``floor(sqrt(3) n / 2)``) in
    the corners.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    rfft : bool
        The rfft layout instead of the full one.
    device
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        ``fft_shape(shape, rfft)``, int64.
    """
    nx = _check_shape(shape)[2]
    return torch.floor(radial_freq(shape, rfft=rfft, device=device) * nx).long()


def apply_fourier_filter(volume: torch.Tensor, fourier_filter: torch.Tensor) -> torch.Tensor:
    """``IFFT(filter * FFT(volume))`` for real volumes.

    Parameters
    ----------
    volume : torch.Tensor
        Real ``(..., z, y, x)``.
    fourier_filter : torch.Tensor
        The rfft layout (last axis ``nx // 2 + 1``) or the full one (last axis ``nx``),
        unshifted, real or complex, broadcastable over the leading batch axes.

    Returns
    -------
    torch.Tensor
        Real, shape and dtype of ``volume``.
    """
    if volume.dim() < 3:
        raise ValueError(f"expected a volume (..., z, y, x), got shape {tuple(volume.shape)}")
    spatial = tuple(volume.shape[-3:])
    nx = spatial[2]
    last = fourier_filter.shape[-1]
    if fourier_filter.shape[-3:-1] != spatial[:2] or last not in (nx, nx // 2 + 1):
        raise ValueError(f"Fourier filter of shape {tuple(fourier_filter.shape)} does not match "
                         f"a volume of shape {spatial} (full or rfft layout expected)")
    dims = (-3, -2, -1)
    work = volume if volume.dtype in (torch.float32, torch.float64) else volume.float()
    if last == nx // 2 + 1:  # rfft layout (for nx <= 2 both layouts coincide)
        out = torch.fft.irfftn(torch.fft.rfftn(work, dim=dims) * fourier_filter, s=spatial, dim=dims)
    else:
        out = torch.fft.ifftn(torch.fft.fftn(work, dim=dims) * fourier_filter, dim=dims).real
    return out.to(volume.dtype)
