"""Training losses: the plain voxel loss and the masked Fourier loss of refine step 5.

Masked loss (DeepDeWedge's, as used by IsoNet2), for a prediction ``x`` and a target ``y``::

    n2n  = base( IFFT(     M  * R(M) * FFT(x - y)) )     # both measured: Noise2Noise denoising
    mw   = base( IFFT((1 - M) * R(M) * FFT(x - y)) )     # missing in the input, measured in the
                                                          # target: missing-wedge restoration
    loss = n2n + mw_weight * mw

``base`` may differ between the terms: ``mw_loss_func`` (refine ``--mw_loss_func``) sets the
missing-wedge term's, e.g. ``FSC`` for the Noise2Noise term and ``FSC+L2`` for the filling.

With ``mw_weight <= 0`` (the IsoNet2 program's default -1) the loss is plain instead:
``base(x - y)`` over the whole cube (``FSC``: over the whole spectrum), reported as the n2n
term with a zero missing-wedge term.

``M`` is the Fourier mask of what the network input measures (its wedge, 1 measured / 0 missing)
and ``R(M)`` the rotated mask, i.e. what the target measures; frequencies the target does not
measure (``1 - R(M)``) carry no loss. ``base`` is the mean over voxels and cubes of the squared
(``L2``), absolute (``L1``) or Huber (``Huber``, delta 1 in normalised units) difference.

``FSC`` (the shell-wise loss of the systematic comparison in the project's papers; the IsoNet2
program offers it as ``--loss_func FSC``, its default is ``L2``): ``1 - mean_s FSC_s(x, y)`` per cube, averaged over cubes, with
shells ``s = floor(|k| n)`` from 1 to ``n // 2`` (DC left out) over the full spectrum; the masked
terms are the FSC of the masked spectra (``W * FFT(x)`` against ``W * FFT(y)``). It is blind to
the scale of the output, so it trains what correlates, not what matches in amplitude.
``FSC+L2``: the sum of the two, term by term (FSC for correlation in every shell, L2 for the
amplitudes, DC included, that FSC leaves free).

Speed: for ``L2`` no inverse transform is needed. With the orthonormal DFT, Parseval gives
``sum |IFFT(W * D)|^2 = sum_k |W_k|^2 |D_k|^2`` over the full spectrum; for real ``x - y`` the
spectrum is Hermitian and the masks are Friedel-symmetric, so the sum over the full spectrum
equals the sum over the ``rfftn`` half-spectrum with weight 2 on every ``kx`` column that has a
conjugate partner (all but ``kx = 0`` and, for even sizes, the Nyquist column). The L2 path
therefore uses one ``rfftn`` of the difference and weighted sums; ``L1``/``Huber`` transform
back (``irfftn``) and take the voxel-wise base. (For interpolated, slightly non-symmetric masks
of arbitrary rotations the rfft sum is that of the mask symmetrised in ``|W|^2``, a difference
at the interpolation level.)

Masks are given in the ``rfftn`` layout ``(..., kz, ky, kx // 2 + 1)``, broadcastable against the
batch ``(b, 1, kz, ky, kx // 2 + 1)``: either ``(kz, ky, kx//2+1)`` or ``(b, 1, ...)``.
All arithmetic is float32 (the caller leaves autocast before calling).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from isonet2core.imaging import fourier


class LossTerms(NamedTuple):
    """``total = n2n + mw_weight * mw`` (scalars); ``n2n``/``mw`` are the unweighted terms."""
    total: torch.Tensor
    n2n: torch.Tensor
    mw: torch.Tensor


_BASES = ("L2", "L1", "Huber", "FSC", "FSC+L2")


def _check_loss_func(loss_func: str) -> None:
    if loss_func not in _BASES:
        raise ValueError(f"loss_func must be one of {_BASES}, got {loss_func!r}")


def _base(diff: torch.Tensor, loss_func: str) -> torch.Tensor:
    if loss_func == "L2":
        return diff.pow(2).mean()
    if loss_func == "L1":
        return diff.abs().mean()
    return F.huber_loss(diff, torch.zeros_like(diff), delta=1.0)


def rfft_weights(n_x: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """Parseval weights of the rfft half-spectrum along x.

    Parameters
    ----------
    n_x : int
        Voxels along x of the real cubes.
    device, dtype
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        ``(n_x // 2 + 1,)``: 1 for ``kx = 0`` and (even ``n_x``) the Nyquist column, 2 for the
        others.
    """
    w = torch.full((n_x // 2 + 1,), 2.0, device=device, dtype=dtype)
    w[0] = 1.0
    if n_x % 2 == 0:
        w[-1] = 1.0
    return w


def plain_loss(x: torch.Tensor, y: torch.Tensor, loss_func: str = "L2") -> torch.Tensor:
    """Loss between a prediction and a target over the whole cube: voxel-wise, or FSC.

    Parameters
    ----------
    x, y : torch.Tensor
        Prediction and target, ``(b, 1, z, y, x)``.
    loss_func : str
        One of ``L2``, ``L1``, ``Huber``, ``FSC``, ``FSC+L2``.

    Returns
    -------
    torch.Tensor
        Scalar, the mean over the batch.
    """
    _check_loss_func(loss_func)
    if loss_func == "FSC+L2":
        return plain_loss(x, y, "FSC") + plain_loss(x, y, "L2")
    if loss_func == "FSC":
        return fsc_loss(_spectrum(x), _spectrum(y), x.shape[-3:])
    return _base(x.float() - y.float(), loss_func)


def _spectrum(x: torch.Tensor) -> torch.Tensor:
    return torch.fft.rfftn(x.float(), dim=(-3, -2, -1), norm="ortho")


def fsc_loss(fx: torch.Tensor, fy: torch.Tensor, shape) -> torch.Tensor:
    """``1 - mean over shells of FSC`` per cube, averaged over cubes.

    Shells ``floor(|k| n)`` in 1..n//2, each full-spectrum frequency counted once; shells where
    either map has no power count as FSC 0.

    Parameters
    ----------
    fx, fy : torch.Tensor
        ``rfftn`` spectra ``(b, 1, z, y, x // 2 + 1)`` of real cubes.
    shape : sequence of int
        Spatial ``(z, y, x)`` of the cubes (cubic).

    Returns
    -------
    torch.Tensor
        Scalar in [0, 2].
    """
    n = int(shape[-1])
    shell = fourier.shell_index(shape, rfft=True, device=fx.device).reshape(-1)
    n_shells = n // 2
    keep = (shell >= 1) & (shell <= n_shells)
    idx = shell[keep] - 1
    cols = rfft_weights(n, device=fx.device).expand(fx.shape[-3:]).reshape(-1)[keep]
    b = fx.shape[0]
    a = fx.reshape(b, -1)[:, keep]
    c = fy.reshape(b, -1)[:, keep]
    zeros = torch.zeros(b, n_shells, device=fx.device, dtype=torch.float32)
    cross = zeros.index_add(1, idx, cols * (a.real * c.real + a.imag * c.imag))
    pa = zeros.index_add(1, idx, cols * (a.real ** 2 + a.imag ** 2))
    pc = zeros.index_add(1, idx, cols * (c.real ** 2 + c.imag ** 2))
    # clamp inside the root: an empty shell then has a finite (zero) gradient, not 0 * inf
    fsc = cross / torch.sqrt((pa * pc).clamp_min(1e-24))
    return (1.0 - fsc.clamp(-1.0, 1.0).mean(dim=1)).mean()


def fourier_weighted_l2(diff_rfft: torch.Tensor, weight: torch.Tensor, n_x: int) -> torch.Tensor:
    """Mean over voxels of ``|IFFT(weight * D)|^2``, via Parseval (no inverse transform).

    Parameters
    ----------
    diff_rfft : torch.Tensor
        ``D``, the orthonormal ``rfftn`` of a real batch ``(b, 1, z, y, x)``: ``(b, 1, z, y, n_x // 2 + 1)``.
    weight : torch.Tensor
        Real, broadcastable to ``diff_rfft``.
    n_x : int
        Voxels along x of the real batch.

    Returns
    -------
    torch.Tensor
        Scalar.
    """
    cols = rfft_weights(n_x, device=diff_rfft.device)
    power = (weight * weight) * (diff_rfft.real ** 2 + diff_rfft.imag ** 2)
    n_voxels = diff_rfft[..., 0].numel() * n_x
    return (power * cols).sum() / n_voxels


def masked_loss(x: torch.Tensor, y: torch.Tensor, input_mask: torch.Tensor, target_mask: torch.Tensor,
                *, mw_weight: float, loss_func: str = "L2", mw_loss_func: Optional[str] = None) -> LossTerms:
    """Masked Fourier loss between a prediction and a target (the module docstring's formula).

    Parameters
    ----------
    x, y : torch.Tensor
        Prediction and target, ``(b, 1, z, y, x)``.
    input_mask : torch.Tensor
        ``M``, what the input measures, rfftn layout, broadcastable to ``(b, 1, z, y, x // 2 + 1)``.
    target_mask : torch.Tensor
        ``R(M)``, what the target measures, same layout.
    mw_weight : float
        Weight of the missing-wedge term.
    loss_func : str
        Base of the terms: ``L2``, ``L1``, ``Huber``, ``FSC`` or ``FSC+L2`` (of both terms, or of
        the Noise2Noise term when ``mw_loss_func`` is given; also the plain loss's).
    mw_loss_func : str, optional
        Base of the missing-wedge term, one of the same; None: ``loss_func``.

    Returns
    -------
    LossTerms
        ``total = n2n + mw_weight * mw`` and the two unweighted terms (scalars).
    """
    _check_loss_func(loss_func)
    if mw_loss_func is not None:
        _check_loss_func(mw_loss_func)
    if x.shape != y.shape or x.dim() != 5:
        raise ValueError(f"x and y must be equal (b, 1, z, y, x) shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    if mw_weight <= 0:                      # the plain loss, no masks
        plain = plain_loss(x, y, loss_func)
        return LossTerms(plain, plain, x.new_zeros((), dtype=torch.float32))
    m = input_mask.float()
    rm = target_mask.float()
    spectra = _Spectra(x, y)
    n2n = _masked_term(spectra, m * rm, loss_func)
    mw = _masked_term(spectra, (1.0 - m) * rm, loss_func if mw_loss_func is None else mw_loss_func)
    return LossTerms(n2n + mw_weight * mw, n2n, mw)


class _Spectra:
    """The spectra of a prediction ``x``, a target ``y`` and their difference, each computed once."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x, self.y = x, y
        self._cache: dict = {}

    def get(self, name: str) -> torch.Tensor:
        if name not in self._cache:
            if name == "d":
                source = self.x.float() - self.y.float()
            else:
                source = self.x if name == "x" else self.y
            self._cache[name] = _spectrum(source)
        return self._cache[name]


def _masked_term(spectra: _Spectra, weight: torch.Tensor, loss_func: str) -> torch.Tensor:
    """One term of the masked loss: ``base(IFFT(weight * FFT(x - y)))``, or the FSC of the weighted
    spectra; ``FSC+L2`` the sum of the two."""
    if loss_func == "FSC+L2":
        return _masked_term(spectra, weight, "FSC") + _masked_term(spectra, weight, "L2")
    shape = spectra.x.shape[-3:]
    if loss_func == "FSC":
        return fsc_loss(weight * spectra.get("x"), weight * spectra.get("y"), shape)
    d = spectra.get("d")
    if loss_func == "L2":
        return fourier_weighted_l2(d, weight, shape[-1])
    return _base(torch.fft.irfftn(weight * d, s=shape, dim=(-3, -2, -1), norm="ortho"), loss_func)
