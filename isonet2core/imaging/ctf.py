"""Contrast transfer function: 1D/3D CTF, first-peak clipping, B-factor, phase flip, Wiener.

Sign convention (project contract): the functions return the transfer function of
*protein-dark* maps, positive at low frequency::

    T(k)  = sin(chi(k) + phi_A)
    chi   = pi * lambda * df * k^2 - (pi / 2) * Cs * lambda^3 * k^4
    phi_A = arctan(A / sqrt(1 - A^2))          (so T(0) = A, the amplitude contrast)

with ``k`` in 1/Angstrom, ``lambda`` the relativistic electron wavelength (Angstrom), ``df``
the defocus at 0 degrees tilt in Angstrom (underfocus positive) and ``Cs`` in Angstrom
(``cs_mm * 1e7``). A recorded map is ``IFFT(T * FFT(ground_truth))``. The CTF is isotropic
(no astigmatism, no defocus gradient across the tilt series) and has no envelope unless a
B-factor is applied explicitly with :func:`bfactor_envelope` (network mode applies it before
and after first-peak clipping, as the IsoNet2 program does, so a B-factor means the same there).

3D filters are built on the grids of :mod:`isonet2core.imaging.fourier` (unshifted, rfft layout by
default), evaluated analytically at every voxel's radial frequency ``|k| / pixel_size_a``.
"""
from __future__ import annotations

import math
from typing import Literal, Optional, Sequence, Union

import numpy as np
import torch

from isonet2core.config import Microscope
from isonet2core.imaging import fourier

CTFSampling = Literal["exact", "isonet2-program"]

ArrayLike = Union[np.ndarray, torch.Tensor]

CLIP_MODES = (0, 1, 2, 3)
"""0 none; 1 constant; 2 negative sine; 3 cosine (see :func:`clip_first_peak`)."""


# ---------------------------------------------------------------------------------------------
# scalar physics
# ---------------------------------------------------------------------------------------------
def electron_wavelength_a(voltage_kv: float) -> float:
    """Relativistic electron wavelength for an acceleration voltage.

    ``lambda = h / sqrt(2 m0 e V (1 + e V / (2 m0 c^2)))`` = ``12.2643 / sqrt(V (1 + 0.978466e-6 V))``
    with ``V`` in volts: 0.01969 A at 300 kV, 0.02508 A at 200 kV.

    Parameters
    ----------
    voltage_kv : float
        Acceleration voltage (kV), positive.

    Returns
    -------
    float
        Wavelength (Angstrom).
    """
    if not voltage_kv > 0:
        raise ValueError(f"voltage must be positive, got {voltage_kv} kV")
    volts = float(voltage_kv) * 1e3
    return 12.2643247 / math.sqrt(volts * (1.0 + 0.978466e-6 * volts))


def amplitude_phase(amplitude_contrast: float) -> float:
    """Phase of the amplitude contrast, ``phi_A = arctan(A / sqrt(1 - A^2))``.

    Parameters
    ----------
    amplitude_contrast : float
        Fraction ``A`` in [0, 1).

    Returns
    -------
    float
        ``phi_A`` (radians).
    """
    if not 0.0 <= amplitude_contrast < 1.0:
        raise ValueError(f"amplitude contrast must be in [0, 1), got {amplitude_contrast}")
    return math.atan2(amplitude_contrast, math.sqrt(1.0 - amplitude_contrast ** 2))


def _check_optics(defocus_a: float, voltage_kv: float, cs_mm: float,
                  amplitude_contrast: float) -> None:
    if not defocus_a >= 0:
        raise ValueError(f"defocus must not be negative, got {defocus_a} A (underfocus is positive)")
    if not cs_mm >= 0:
        raise ValueError(f"spherical aberration must not be negative, got {cs_mm} mm")
    electron_wavelength_a(voltage_kv)
    amplitude_phase(amplitude_contrast)


def _chi_coefficients(defocus_a: float, voltage_kv: float, cs_mm: float):
    """``chi = b * u - a * u^2`` with ``u = k^2`` (k in 1/A): returns ``(a, b)``."""
    lam = electron_wavelength_a(voltage_kv)
    cs_a = float(cs_mm) * 1e7
    return 0.5 * math.pi * cs_a * lam ** 3, math.pi * lam * float(defocus_a)


def _rising_branch_k(target: float, a: float, b: float) -> Optional[float]:
    """Smallest ``k >= 0`` with ``chi(k) = target`` on the rising branch, or None if unreached.

    Solves ``a u^2 - b u + target = 0`` for ``u = k^2`` in the cancellation-free form
    ``u = 2 target / (b + sqrt(b^2 - 4 a target))`` (also valid for ``a = 0``, i.e. Cs = 0).
    """
    if target < 0:
        return None
    if target == 0:
        return 0.0
    disc = b * b - 4.0 * a * target
    if b <= 0 or disc < 0:
        return None
    return math.sqrt(2.0 * target / (b + math.sqrt(disc)))


def first_peak_freq(defocus_a: float, voltage_kv: float, cs_mm: float,
                    amplitude_contrast: float) -> float:
    """Frequency ``f0`` of the first maximum of ``T(k)`` for ``k > 0``.

    Normally the first ``k`` with ``chi(k) + phi_A = pi / 2`` (there ``T(f0) = 1``). When the
    phase never reaches ``pi / 2`` (defocus too small for the spherical aberration), the peak is
    the maximum of ``chi`` (``k^2 = df / (Cs lambda^2)``); with no defocus ``T`` decreases from
    ``k = 0`` and ``f0 = 0``.

    Parameters
    ----------
    defocus_a : float
        Defocus (Angstrom, underfocus positive).
    voltage_kv, cs_mm, amplitude_contrast : float
        kV, mm, fraction in [0, 1).

    Returns
    -------
    float
        ``f0`` (1/Angstrom), 0 without defocus.
    """
    _check_optics(defocus_a, voltage_kv, cs_mm, amplitude_contrast)
    a, b = _chi_coefficients(defocus_a, voltage_kv, cs_mm)
    k = _rising_branch_k(0.5 * math.pi - amplitude_phase(amplitude_contrast), a, b)
    if k is not None:
        return k
    if b <= 0:
        return 0.0
    return math.sqrt(b / (2.0 * a))


def ctf_zero_freqs(n_zeros: int, defocus_a: float, voltage_kv: float, cs_mm: float,
                   amplitude_contrast: float) -> np.ndarray:
    """Analytic zeros of ``T``: ``chi(k) + phi_A = n pi``, ``n = 1, 2, ...``.

    Only zeros on the rising branch of ``chi`` (below its maximum) are returned.

    Parameters
    ----------
    n_zeros : int
        At most this many zeros.
    defocus_a : float
        Defocus (Angstrom, underfocus positive).
    voltage_kv, cs_mm, amplitude_contrast : float
        kV, mm, fraction in [0, 1).

    Returns
    -------
    numpy.ndarray
        float64 ``(m,)``, ``m <= n_zeros``, increasing frequencies (1/Angstrom).
    """
    _check_optics(defocus_a, voltage_kv, cs_mm, amplitude_contrast)
    a, b = _chi_coefficients(defocus_a, voltage_kv, cs_mm)
    phi = amplitude_phase(amplitude_contrast)
    zeros = []
    for n in range(1, int(n_zeros) + 1):
        k = _rising_branch_k(n * math.pi - phi, a, b)
        if k is None:
            break
        zeros.append(k)
    return np.asarray(zeros, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# curves
# ---------------------------------------------------------------------------------------------
def ctf_of_freq(freq_per_a: torch.Tensor, defocus_a: float, voltage_kv: float, cs_mm: float,
                amplitude_contrast: float) -> torch.Tensor:
    """``T(k) = sin(chi(k) + phi_A)`` at given spatial frequencies.

    Parameters
    ----------
    freq_per_a : torch.Tensor
        Frequencies (1/Angstrom), any shape; computed in its dtype (pass float64 for accuracy).
    defocus_a : float
        Defocus (Angstrom, underfocus positive).
    voltage_kv, cs_mm, amplitude_contrast : float
        kV, mm, fraction in [0, 1).

    Returns
    -------
    torch.Tensor
        ``T``, same shape, dtype and device as ``freq_per_a``.
    """
    _check_optics(defocus_a, voltage_kv, cs_mm, amplitude_contrast)
    a, b = _chi_coefficients(defocus_a, voltage_kv, cs_mm)
    u = freq_per_a * freq_per_a
    return torch.sin(b * u - a * u * u + amplitude_phase(amplitude_contrast))


def ctf_1d_freq_per_a(n: int, pixel_size_a: float) -> np.ndarray:
    """The radial sample frequencies of :func:`ctf_1d`.

    Parameters
    ----------
    n : int
        Number of samples, at least 2.
    pixel_size_a : float
        Angstrom per voxel.

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)``: 0 to Nyquist ``0.5 / pixel_size_a`` inclusive (1/Angstrom).
    """
    if int(n) < 2:
        raise ValueError(f"a 1D CTF needs at least 2 samples, got {n}")
    if not pixel_size_a > 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_a} A")
    return np.linspace(0.0, 0.5 / float(pixel_size_a), int(n))


def ctf_1d(n: int, pixel_size_a: float, defocus_a: float, voltage_kv: float, cs_mm: float,
           amplitude_contrast: float) -> np.ndarray:
    """Radial CTF ``T`` from 0 to Nyquist inclusive.

    Sample ``i`` is at ``i / (n - 1) * 0.5 / pixel_size_a`` 1/A (:func:`ctf_1d_freq_per_a`).

    Parameters
    ----------
    n : int
        Number of samples, at least 2.
    pixel_size_a : float
        Angstrom per voxel.
    defocus_a : float
        Defocus (Angstrom, underfocus positive).
    voltage_kv, cs_mm, amplitude_contrast : float
        kV, mm, fraction in [0, 1).

    Returns
    -------
    numpy.ndarray
        float64 ``(n,)``, ``T[0] = A`` (the amplitude contrast).
    """
    freq = torch.from_numpy(ctf_1d_freq_per_a(n, pixel_size_a))
    return ctf_of_freq(freq, defocus_a, voltage_kv, cs_mm, amplitude_contrast).numpy()


def _freq_per_a(shape: Sequence[int], pixel_size_a: float, rfft: bool,
                device: Optional[torch.device]) -> torch.Tensor:
    if not pixel_size_a > 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_a} A")
    return fourier.radial_freq(shape, rfft=rfft, device=device, dtype=torch.float64) / float(pixel_size_a)


def ctf_3d(shape: Sequence[int], pixel_size_a: float, defocus_a: float, voltage_kv: float,
           cs_mm: float, amplitude_contrast: float, *, rfft: bool = True,
           device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Isotropic 3D CTF ``T(|k|) = sin(chi(|k|) + phi_A)`` of a volume.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    pixel_size_a : float
        Angstrom per voxel.
    defocus_a : float
        Angstrom, underfocus positive.
    voltage_kv, cs_mm, amplitude_contrast : float
        kV, mm, fraction in [0, 1).
    rfft : bool
        The rfft layout (to multiply ``torch.fft.rfftn`` output) instead of the full one.
    device, dtype
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        Real, ``fourier.fft_shape(shape, rfft)``, unshifted (DC at index 0, ``T[0, 0, 0] = A``).
    """
    freq = _freq_per_a(shape, pixel_size_a, rfft, device)
    return ctf_of_freq(freq, defocus_a, voltage_kv, cs_mm, amplitude_contrast).to(dtype)


def _as_tensor(x: ArrayLike):
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.asarray(x)), True
    return x, False


def clip_first_peak(ctf: ArrayLike, freq: ArrayLike, f0: float, mode: int, *,
                    peak_value: float = 1.0) -> ArrayLike:
    """Lift the CTF below its first peak ``f0`` (RELION's "intact first peak").

    Values at ``freq >= f0`` are returned unchanged. Below ``f0``, with ``x = freq / f0`` in
    [0, 1) and ``P = peak_value``, as the IsoNet2 program defines the modes:

    * mode 0, none:          the CTF itself;
    * mode 1, constant:      ``P``;
    * mode 2, negative sine: ``max(CTF, P * (1 - sin(pi x / 2)))``;
    * mode 3, cosine:        ``max(CTF, P * cos(pi x / 2))``.

    Modes 1-3 equal ``P`` at DC (no low-resolution damping); modes 2 and 3 fall from there
    until they meet the rising CTF, which they follow up to ``f0`` (so they are continuous at
    ``f0``). With ``f0 <= 0`` nothing lies below the peak and the CTF is returned as is.

    Parameters
    ----------
    ctf : numpy.ndarray or torch.Tensor
        CTF values, any shape.
    freq : numpy.ndarray or torch.Tensor
        Their frequencies, same shape or broadcastable, in the units of ``f0``.
    f0 : float
        The first peak's frequency (:func:`first_peak_freq`).
    mode : int
        0, 1, 2 or 3 (above).
    peak_value : float
        The CTF value at ``f0`` (1 whenever ``chi + phi_A`` reaches ``pi / 2``).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        The type, shape and dtype of ``ctf``.
    """
    if mode not in CLIP_MODES:
        raise ValueError(f"clip_first_peak_mode must be 0, 1, 2 or 3, got {mode!r}")
    t, was_numpy = _as_tensor(ctf)
    f, _ = _as_tensor(freq)
    f = f.to(device=t.device)
    if mode == 0 or f0 <= 0:
        out = t.clone()
    else:
        x = (f / float(f0)).to(torch.float64)
        p = float(peak_value)
        if mode == 1:
            curve = torch.full_like(x, p)
        elif mode == 2:
            curve = p * (1.0 - torch.sin(0.5 * math.pi * x))
        else:
            curve = p * torch.cos(0.5 * math.pi * x)
        if mode != 1:
            curve = torch.maximum(curve, t.to(torch.float64).expand_as(curve))
        out = torch.where(f < float(f0), curve.to(t.dtype), t)
    return out.numpy() if was_numpy else out


def bfactor_envelope(freq_per_a: ArrayLike, bfactor: float) -> ArrayLike:
    """B-factor envelope ``exp(-B f^2 / 4)``.

    Parameters
    ----------
    freq_per_a : numpy.ndarray or torch.Tensor
        Frequencies ``f`` (1/Angstrom), any shape.
    bfactor : float
        ``B`` (Angstrom^2); a negative one sharpens.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        The envelope, type and shape of ``freq_per_a``.
    """
    if isinstance(freq_per_a, np.ndarray):
        return np.exp(-float(bfactor) * freq_per_a ** 2 / 4.0)
    return torch.exp(-float(bfactor) * freq_per_a * freq_per_a / 4.0)


def _microscope(microscope: Microscope) -> Microscope:
    if not isinstance(microscope, Microscope):
        raise ValueError(f"expected a config.Microscope, got {type(microscope).__name__}")
    return microscope.validate()


def effective_ctf(shape: Sequence[int], microscope: Microscope, *, bfactor: float = 0.0,
                  clip_first_peak_mode: int = 1, rfft: bool = True,
                  device: Optional[torch.device] = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The CTF of network-mode training, with the B-factor as the IsoNet2 program applies it.

    ``CTF_eff(f) = C(f) * E(f)`` where ``E = exp(-B f^2 / 4)`` (:func:`bfactor_envelope`) and
    ``C`` is :func:`clip_first_peak` of ``T * E`` (``T = ctf_3d(...)``) with
    ``f0 = first_peak_freq`` (the peak of ``T``) and ``peak_value = T(f0) E(f0)``. Above ``f0``
    that is ``T exp(-B f^2 / 2)``, as there; below it the clipped curve times ``E``. (The
    IsoNet2 program looks for the peak on ``T * E``, which a large B moves slightly lower.)

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    microscope : Microscope
        Pixel size, defocus and optics.
    bfactor : float
        ``B`` (Angstrom^2); negative sharpens (the program's guidance for cells: 0 or negative).
    clip_first_peak_mode : int
        0-3, :func:`clip_first_peak`.
    rfft : bool
        The rfft layout instead of the full one.
    device, dtype
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        Real, ``fourier.fft_shape(shape, rfft)``, unshifted.
    """
    m = _microscope(microscope)
    if not math.isfinite(bfactor):
        raise ValueError(f"bfactor must be a finite number, got {bfactor}")
    freq = _freq_per_a(shape, m.pixel_size_a, rfft, device)
    optics = (m.defocus_a, m.voltage_kv, m.cs_mm, m.amplitude_contrast)
    env = bfactor_envelope(freq, bfactor)
    f0 = first_peak_freq(*optics)
    f0_t = torch.tensor(f0, dtype=torch.float64)
    peak = float(ctf_of_freq(f0_t, *optics) * bfactor_envelope(f0_t, bfactor))
    clipped = clip_first_peak(ctf_of_freq(freq, *optics) * env, freq, f0, clip_first_peak_mode,
                              peak_value=peak)
    return torch.as_tensor(clipped * env).to(dtype)


def ctf_sign(shape: Sequence[int], microscope: Microscope, *, rfft: bool = True,
             device: Optional[torch.device] = None, dtype: torch.dtype = torch.float32,
             sampling: CTFSampling = "exact") -> torch.Tensor:
    """Phase-flip filter ``sign(T)`` (+1 where ``T >= 0``, -1 elsewhere).

    ``sampling="exact"``: ``T`` at each voxel's frequency. ``sampling="isonet2-program"`` (for
    models trained by the IsoNet2 program, whose inputs were flipped so; cubic shapes of edge
    ``n``): the program's map, ``T`` sampled at the ``n`` frequencies ``i / (2 n px)`` and read
    by linear interpolation at ``min(1, |k| / Nyquist) * (n - 1)`` samples, i.e. at
    frequencies scaled by ``(n - 1) / n`` and clipped at Nyquist, which moves the zeros.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume (cubic for ``"isonet2-program"``).
    microscope : Microscope
        Pixel size, defocus and optics.
    rfft : bool
        The rfft layout instead of the full one.
    device, dtype
        Of the returned tensor.
    sampling : {"exact", "isonet2-program"}
        How ``T`` is sampled (above).

    Returns
    -------
    torch.Tensor
        +1 / -1, ``fourier.fft_shape(shape, rfft)``, unshifted.
    """
    m = _microscope(microscope)
    if sampling == "exact":
        t = ctf_3d(shape, m.pixel_size_a, m.defocus_a, m.voltage_kv, m.cs_mm, m.amplitude_contrast,
                   rfft=rfft, device=device, dtype=torch.float64)
    elif sampling == "isonet2-program":
        n = int(shape[-1])
        if len(set(int(v) for v in shape)) != 1 or n < 2:
            raise ValueError(f"the IsoNet2 program's CTF sampling needs a cube, got shape {tuple(shape)}")
        samples = ctf_of_freq(torch.arange(n, device=device, dtype=torch.float64) / (2.0 * n * m.pixel_size_a),
                              m.defocus_a, m.voltage_kv, m.cs_mm, m.amplitude_contrast)
        r = (fourier.radial_freq(shape, rfft=rfft, device=device, dtype=torch.float64) / 0.5).clamp(max=1.0)
        pos = r * (n - 1)
        i0 = pos.floor().long().clamp(max=n - 2)
        frac = pos - i0
        t = samples[i0] * (1.0 - frac) + samples[i0 + 1] * frac
    else:
        raise ValueError(f"sampling must be 'exact' or 'isonet2-program', got {sampling!r}")
    return torch.where(t >= 0, 1.0, -1.0).to(dtype)


def phase_flip(volume: torch.Tensor, microscope: Microscope) -> torch.Tensor:
    """Phase-flip a real volume: ``IFFT(sign(T) * FFT(volume))``.

    Keeps the protein-dark contrast of the input (``sign(T) = +1`` at low frequency).

    Parameters
    ----------
    volume : torch.Tensor
        Real ``(..., z, y, x)``.
    microscope : Microscope
        Pixel size, defocus and optics.

    Returns
    -------
    torch.Tensor
        Real, shape and dtype of ``volume``.
    """
    flip = ctf_sign(tuple(volume.shape[-3:]), microscope, rfft=True, device=volume.device,
                    dtype=torch.float64 if volume.dtype == torch.float64 else torch.float32)
    return fourier.apply_fourier_filter(volume, flip)


def ssnr(freq_cpv: torch.Tensor, pixel_size_a: float, *, snrfalloff: float,
         deconvstrength: float, highpassnyquist: float) -> torch.Tensor:
    """Empirical spectral SNR of the IsoNet1/Warp deconvolution.

    With ``x = freq_cpv / 0.5`` the frequency as a fraction of Nyquist (IsoNet1's axis)::

        SSNR = 10**deconvstrength * exp(-x * snrfalloff * 100 / pixel_size_a) * H(x) + 1e-6
        H(x) = 1 - cos(pi * min(1, x / highpassnyquist))      (H = 2 everywhere if highpassnyquist = 0)

    ``H`` is IsoNet1's smooth high-pass: 0 at DC, rising to 2 at ``highpassnyquist`` x Nyquist
    (the factor 2 above the cut-off is kept so that users' snrfalloff / deconvstrength values
    give the same filter as in IsoNet1).

    Parameters
    ----------
    freq_cpv : torch.Tensor
        Frequencies (cycles/voxel), any shape.
    pixel_size_a : float
        Angstrom per voxel.
    snrfalloff, deconvstrength, highpassnyquist : float
        The deconvolution settings (:class:`isonet2core.config.DeconvConfig`).

    Returns
    -------
    torch.Tensor
        SSNR, shape, dtype and device of ``freq_cpv``.
    """
    if not pixel_size_a > 0:
        raise ValueError(f"pixel size must be positive, got {pixel_size_a} A")
    if snrfalloff < 0:
        raise ValueError(f"snrfalloff must not be negative, got {snrfalloff}")
    if not 0 <= highpassnyquist < 1:
        raise ValueError(f"highpassnyquist must be in [0, 1), got {highpassnyquist}")
    x = freq_cpv / 0.5
    if highpassnyquist > 0:
        highpass = 1.0 - torch.cos(math.pi * torch.clamp(x / float(highpassnyquist), max=1.0))
    else:
        highpass = torch.full_like(x, 2.0)
    return (10.0 ** float(deconvstrength)) * torch.exp(-x * float(snrfalloff) * 100.0 / float(pixel_size_a)) \
        * highpass + 1e-6


def wiener_filter(shape: Sequence[int], microscope: Microscope, *, snrfalloff: float = 1.0,
                  deconvstrength: float = 1.0, highpassnyquist: float = 0.02,
                  phaseflipped: bool = False, rfft: bool = True,
                  device: Optional[torch.device] = None,
                  dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Wiener-like deconvolution filter ``W = T / (T^2 + 1 / SSNR)`` (IsoNet1/Warp style).

    ``T`` is the CTF of ``microscope`` (its own amplitude contrast), ``|T|`` when the data are
    already phase-flipped; ``SSNR`` is :func:`ssnr` at each voxel's radial frequency. Used by
    ``deconv`` and by wiener-mode training targets. ``W`` is positive at low frequency (contrast
    kept) and 0 at DC when the high-pass is on.

    Parameters
    ----------
    shape : sequence of int
        ``(z, y, x)`` of the volume.
    microscope : Microscope
        Pixel size, defocus and optics.
    snrfalloff, deconvstrength, highpassnyquist : float
        The deconvolution settings (:func:`ssnr`).
    phaseflipped : bool
        The data are phase-flipped: ``|T|`` instead of ``T``.
    rfft : bool
        The rfft layout instead of the full one.
    device, dtype
        Of the returned tensor.

    Returns
    -------
    torch.Tensor
        Real, ``fourier.fft_shape(shape, rfft)``, unshifted.
    """
    kcpv = fourier.radial_freq(shape, rfft=rfft, device=device, dtype=torch.float64)
    return wiener_of_freq(kcpv, microscope, snrfalloff=snrfalloff, deconvstrength=deconvstrength,
                          highpassnyquist=highpassnyquist, phaseflipped=phaseflipped).to(dtype)


def wiener_of_freq(freq_cpv: torch.Tensor, microscope: Microscope, *, snrfalloff: float = 1.0,
                   deconvstrength: float = 1.0, highpassnyquist: float = 0.02,
                   phaseflipped: bool = False) -> torch.Tensor:
    """The filter of :func:`wiener_filter` at given radial frequencies (any block of a grid: the
    streamed deconvolution computes it for a few rows of the volume's grid at a time).

    Parameters
    ----------
    freq_cpv : torch.Tensor
        Radial frequencies ``|k|`` (cycles/voxel), any shape; computed in its dtype (float64
        in :func:`wiener_filter`).
    microscope : Microscope
        Pixel size, defocus and optics.
    snrfalloff, deconvstrength, highpassnyquist : float
        The deconvolution settings (:func:`ssnr`).
    phaseflipped : bool
        The data are phase-flipped: ``|T|`` instead of ``T``.

    Returns
    -------
    torch.Tensor
        ``W``, shape, dtype and device of ``freq_cpv``.
    """
    m = _microscope(microscope)
    t = ctf_of_freq(freq_cpv / m.pixel_size_a, m.defocus_a, m.voltage_kv, m.cs_mm, m.amplitude_contrast)
    if phaseflipped:
        t = t.abs()
    s = ssnr(freq_cpv, m.pixel_size_a, snrfalloff=snrfalloff, deconvstrength=deconvstrength,
             highpassnyquist=highpassnyquist)
    return t / (t * t + 1.0 / s)
