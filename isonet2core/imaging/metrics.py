"""Quality metrics of tomograms against a reference: correlation, PSNR, FSC, missing-wedge FSC.

All functions take real arrays (numpy, or anything ``np.asarray`` accepts) and return Python
floats or numpy arrays. Volumes are ``(z, y, x)``; the two maps compared must have the same
shape. Contrast and scale of the maps do not matter for any metric here (the simulator's
ground truth and the tomograms are both protein dark, but an affine change of either map
leaves every number unchanged except the sign of :func:`pearson`).

Fourier shells (:func:`fsc`, :func:`wedge_fsc`): frequencies in cycles/voxel on the unshifted
rfft grid of the volume (:func:`isonet2core.imaging.fourier.radial_freq`); divide by the pixel size
in Angstrom for 1/A. With ``n`` shells of width ``w = 0.5 / n`` shell ``i`` (``i = 1 .. n``)
holds the Fourier points with ``(i - 1/2) w < |k| <= (i + 1/2) w`` and is reported at
frequency ``i * w``, so the last shell sits at Nyquist (0.5); non-DC points below ``w / 2``
join shell 1; DC (the mean) and the corners beyond ``(n + 1/2) w`` are left out. Sums over
the half (rfft) spectrum count the columns that stand for two points of the full spectrum
twice, so every number equals that of the full 3D FFT. A shell where one map has no power
(less than ``1e-10`` of that map's mean power per Fourier point, DC left out, i.e. float32
rounding) has
the value 0 (nothing of the other map is reproduced); one holding no point, or no power in
either map, has the value ``nan`` (undefined).

The missing-wedge FSC (after the directional FSC of Van Veen et al., restricted to the
"missing data" region) uses exactly the Fourier points that
:func:`isonet2core.imaging.wedge.wedge_mask` marks missing (0) for the tilt range.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np
import scipy.fft
import torch

from isonet2core.imaging import fourier
from isonet2core.imaging.wedge import wedge_mask

#: shell power below this fraction of the map's mean power per Fourier point counts as none
_EMPTY_POWER = 1e-10


def _pair(a, b, name: str = "metric") -> Tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"{name}: the two maps differ in shape, {a.shape} and {b.shape}")
    if a.size < 2:
        raise ValueError(f"{name}: maps need at least 2 values, got shape {a.shape}")
    return a, b


def _volume_pair(a, b, name: str) -> Tuple[np.ndarray, np.ndarray]:
    a, b = _pair(a, b, name)
    if a.ndim != 3:
        raise ValueError(f"{name}: expected volumes (z, y, x), got shape {a.shape}")
    return a, b


def pearson(a, b) -> float:
    """Pearson correlation coefficient of two maps, in float64 over all voxels.

    Parameters
    ----------
    a, b : array_like
        Maps of one shape (any dimension).

    Returns
    -------
    float
        In [-1, 1]; ``nan`` when either map is constant.
    """
    a, b = _pair(a, b, "pearson")
    x = a.astype(np.float64).ravel()
    y = b.astype(np.float64).ravel()
    x = x - x.mean()
    y = y - y.mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    if denom == 0.0:
        return float("nan")
    return float(x @ y) / denom


def psnr(a, b) -> float:
    """Peak signal-to-noise ratio of the map ``a`` against the reference ``b``.

    Tomograms and references come in different scales and offsets (a WBP has arbitrary
    units; the ground truth is a density), so ``a`` is first mapped onto ``b`` by the
    least-squares affine fit ``a' = s * a + t`` (``s, t`` minimise ``sum (s a + t - b)^2``;
    ``s = 0`` when ``a`` is constant; ``s`` may be negative, so an inverted map scores like
    the upright one - look at :func:`pearson` for the sign). Then
    ``PSNR = 10 log10(R^2 / MSE)`` with ``R = b.max() - b.min()`` (the reference's data range)
    and ``MSE = mean((a' - b)^2)``. Equivalent to ``10 log10(R^2 / (var(b) (1 - r^2)))`` with
    ``r`` the Pearson correlation.

    Parameters
    ----------
    a : array_like
        The map scored.
    b : array_like
        The reference, same shape, not constant.

    Returns
    -------
    float
        dB; ``inf`` when the MSE is exactly 0 (a perfect affine match gives some 300 dB after
        float64 rounding).

    Raises
    ------
    ValueError
        Shapes differ or the reference is constant.
    """
    a, b = _pair(a, b, "psnr")
    x = a.astype(np.float64).ravel()
    y = b.astype(np.float64).ravel()
    data_range = float(y.max() - y.min())
    if data_range == 0.0:
        raise ValueError("psnr: the reference map is constant (data range 0)")
    xc = x - x.mean()
    yc = y - y.mean()
    sxx = float(xc @ xc)
    scale = float(xc @ yc) / sxx if sxx > 0 else 0.0
    mse = float(np.mean((scale * xc - yc) ** 2))
    if mse == 0.0:
        return float("inf")
    return 10.0 * math.log10(data_range ** 2 / mse)


def _default_shells(shape: Sequence[int]) -> int:
    return max(1, max(int(s) for s in shape) // 2)


def _rfft_weights(nx: int) -> np.ndarray:
    """Full-spectrum multiplicity of the rfft columns ``(nx // 2 + 1,)``: 1 for kx = 0 and
    (even ``nx``) the Nyquist column, 2 for the others (they stand for +kx and -kx)."""
    weight = np.full(nx // 2 + 1, 2.0)
    weight[0] = 1.0
    if nx % 2 == 0:
        weight[-1] = 1.0
    return weight


def _shell_layout(shape: Sequence[int], n_shells: Optional[int]):
    """Shell index (0 = left out) and full-spectrum weight of every rfft point, the frequencies."""
    if n_shells is None:
        n_shells = _default_shells(shape)
    if int(n_shells) != n_shells or n_shells < 1:
        raise ValueError(f"n_shells must be a positive integer or None, got {n_shells}")
    n_shells = int(n_shells)
    width = 0.5 / n_shells
    radius = fourier.radial_freq(shape, rfft=True, dtype=torch.float64).numpy()
    index = np.rint(radius / width).astype(np.int64)
    index[(index == 0) & (radius > 0)] = 1
    index[index > n_shells] = 0
    weight = np.broadcast_to(_rfft_weights(int(shape[2])), radius.shape)
    freq = width * np.arange(1, n_shells + 1, dtype=np.float64)
    return index, weight, freq, n_shells


def _mean_power(spectrum: np.ndarray, weight: np.ndarray) -> float:
    """Mean ``|F|^2`` per point of the full spectrum without DC, from a raveled rfft and its weights."""
    power = weight * (spectrum.real.astype(np.float64) ** 2 + spectrum.imag.astype(np.float64) ** 2)
    return float(power.sum() - power[0]) / max(float(weight.sum()) - 1.0, 1.0)


def _shell_correlation(fa: np.ndarray, fb: np.ndarray, index: np.ndarray, weight: np.ndarray,
                       n_shells: int, select: Optional[np.ndarray] = None) -> np.ndarray:
    if select is not None:
        index = np.where(select, index, 0)
    idx = index.ravel()
    w = weight.ravel()
    fa = fa.ravel()
    fb = fb.ravel()
    length = n_shells + 1
    cross = np.bincount(idx, weights=w * (fa.real * fb.real + fa.imag * fb.imag), minlength=length)
    pa = np.bincount(idx, weights=w * (fa.real ** 2 + fa.imag ** 2), minlength=length)
    pb = np.bincount(idx, weights=w * (fb.real ** 2 + fb.imag ** 2), minlength=length)
    # a shell counts as empty in a map when its power is at the level of float32 rounding
    # (relative to the map's mean power per Fourier point, DC left out): its correlation
    # would be noise of noise
    count = np.bincount(idx, weights=w, minlength=length)
    has_a = pa > _EMPTY_POWER * count * _mean_power(fa, w)
    has_b = pb > _EMPTY_POWER * count * _mean_power(fb, w)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = cross / np.sqrt(pa * pb)
    curve[has_a != has_b] = 0.0                   # one map has nothing there: no correlation
    curve[(count == 0) | ~(has_a | has_b)] = np.nan
    return curve[1:]


def _rfft(volume: np.ndarray) -> np.ndarray:
    return scipy.fft.rfftn(volume.astype(np.float32, copy=False), workers=-1)


def fsc(a, b, n_shells: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Fourier shell correlation of two volumes of the same shape.

    ``FSC_i = sum Re(A conj(B)) / sqrt(sum |A|^2 sum |B|^2)`` over shell ``i`` (see the module
    docstring for the shells).

    Parameters
    ----------
    a, b : array_like
        Volumes ``(z, y, x)`` of one shape.
    n_shells : int, optional
        Number of shells; default ``max(shape) // 2`` (shell width one Fourier sample of the
        longest axis).

    Returns
    -------
    freq : ndarray
        ``(n_shells,)`` float64, cycles/voxel, ``0.5 / n_shells .. 0.5``.
    fsc : ndarray
        ``(n_shells,)`` float64 correlations: 0 where exactly one map has no power, ``nan``
        where neither has or the shell holds no point.
    """
    a, b = _volume_pair(a, b, "fsc")
    index, weight, freq, n = _shell_layout(a.shape, n_shells)
    return freq, _shell_correlation(_rfft(a), _rfft(b), index, weight, n)


def wedge_fsc(a, b, tilt_min_deg: float, tilt_max_deg: float,
              n_shells: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """FSC restricted to the missing wedge of the tilt range ``[tilt_min_deg, tilt_max_deg]``.

    Same shells as :func:`fsc`, but each shell only holds the Fourier points that
    ``isonet2core.imaging.wedge.wedge_mask(shape, tilt_min_deg, tilt_max_deg, rfft=True)`` marks missing
    (0). It measures how well ``a`` recovers the information of ``b`` that a tilt series of that
    range never recorded: 0 for a map without power in the wedge.

    Parameters
    ----------
    a, b : array_like
        Volumes ``(z, y, x)`` of one shape.
    tilt_min_deg, tilt_max_deg : float
        The tilt range (degrees, tilt axis y).
    n_shells : int, optional
        As in :func:`fsc`.

    Returns
    -------
    freq : ndarray
        ``(n_shells,)`` float64, cycles/voxel.
    fsc : ndarray
        ``(n_shells,)`` float64; ``nan`` in low shells without missing points.
    """
    return _region_fsc(a, b, tilt_min_deg, tilt_max_deg, n_shells, missing=True, name="wedge_fsc")


def measured_fsc(a, b, tilt_min_deg: float, tilt_max_deg: float,
                 n_shells: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """FSC restricted to the measured region of the tilt range (the complement of
    :func:`wedge_fsc`'s points): how well ``a`` keeps what the tilt series recorded.

    Parameters
    ----------
    a, b : array_like
        Volumes ``(z, y, x)`` of one shape.
    tilt_min_deg, tilt_max_deg : float
        The tilt range (degrees, tilt axis y).
    n_shells : int, optional
        As in :func:`fsc`.

    Returns
    -------
    freq : ndarray
        ``(n_shells,)`` float64, cycles/voxel.
    fsc : ndarray
        ``(n_shells,)`` float64 correlations.
    """
    return _region_fsc(a, b, tilt_min_deg, tilt_max_deg, n_shells, missing=False, name="measured_fsc")


def _region_fsc(a, b, tilt_min_deg, tilt_max_deg, n_shells, *, missing: bool, name: str):
    a, b = _volume_pair(a, b, name)
    index, weight, freq, n = _shell_layout(a.shape, n_shells)
    measured = wedge_mask(a.shape, tilt_min_deg, tilt_max_deg, rfft=True).numpy() != 0
    return freq, _shell_correlation(_rfft(a), _rfft(b), index, weight, n,
                                    select=~measured if missing else measured)


def fsc_resolution(freq, fsc_values, pixel_size_a: float, threshold: float = 0.143) -> float:
    """Resolution where an FSC curve first drops below ``threshold``.

    Shells with ``nan`` are skipped. The crossing is linearly interpolated between the last
    shell at or above the threshold and the first one below it, and converted to
    ``pixel_size_a / f``.

    Parameters
    ----------
    freq : array_like
        Shell frequencies (cycles/voxel, ascending, as :func:`fsc` returns them).
    fsc_values : array_like
        The curve, same length.
    pixel_size_a : float
        Angstrom per voxel.
    threshold : float
        The FSC criterion (0.143, 0.5, ...).

    Returns
    -------
    float
        Angstrom. When the curve never drops below the threshold, that of the last shell
        (``2 * pixel_size_a`` for :func:`fsc` curves); ``inf`` when the first shell is below it;
        ``nan`` when the curve has no finite value.
    """
    freq = np.asarray(freq, dtype=np.float64)
    values = np.asarray(fsc_values, dtype=np.float64)
    if freq.shape != values.shape or freq.ndim != 1:
        raise ValueError(f"fsc_resolution: freq and fsc must be 1D arrays of the same length, "
                         f"got shapes {freq.shape} and {values.shape}")
    if not pixel_size_a > 0:
        raise ValueError(f"fsc_resolution: pixel_size_a must be positive, got {pixel_size_a}")
    keep = np.isfinite(values) & np.isfinite(freq)
    freq, values = freq[keep], values[keep]
    if freq.size == 0:
        return float("nan")
    below = np.flatnonzero(values < threshold)
    if below.size == 0:
        return float(pixel_size_a / freq[-1])
    i = int(below[0])
    if i == 0:
        return float("inf")
    f0, f1, c0, c1 = freq[i - 1], freq[i], values[i - 1], values[i]
    crossing = f0 + (f1 - f0) * (c0 - threshold) / (c0 - c1)
    return float(pixel_size_a / crossing)


def mean_fsc(freq, fsc_values, f_max: Optional[float] = None) -> float:
    """Mean of an FSC curve over its finite shells with ``0 < freq <= f_max``; a one-number summary.

    Parameters
    ----------
    freq : array_like
        Shell frequencies (cycles/voxel).
    fsc_values : array_like
        The curve, same length.
    f_max : float, optional
        Highest frequency included (cycles/voxel); all shells when None.

    Returns
    -------
    float
        ``nan`` when no shell qualifies.
    """
    freq = np.asarray(freq, dtype=np.float64)
    values = np.asarray(fsc_values, dtype=np.float64)
    if freq.shape != values.shape:
        raise ValueError(f"mean_fsc: freq and fsc differ in shape, {freq.shape} and {values.shape}")
    keep = (freq > 0) & np.isfinite(values)
    if f_max is not None:
        keep &= freq <= f_max
    return float(values[keep].mean()) if keep.any() else float("nan")


def wedge_power_fraction(volume, tilt_min_deg: float, tilt_max_deg: float) -> float:
    """Fraction of the non-DC Fourier power of a volume in the missing wedge.

    ``sum |F|^2`` over the points that ``wedge_mask(..., rfft=True)`` marks missing (0), divided
    by ``sum |F|^2`` over all points but DC (whole spectrum, corners included, full-FFT
    weighting). A reconstruction from the tilt range has a value near 0; white noise has the
    missing share of the grid points (0.29 for +-60 degrees on a grid with equal Nyquist along z
    and x, a little less than ``1 - measured_fraction`` = 1/3 because the grid's corners lie in
    measured directions).

    Parameters
    ----------
    volume : array_like
        ``(z, y, x)``.
    tilt_min_deg, tilt_max_deg : float
        The tilt range (degrees, tilt axis y).

    Returns
    -------
    float
        In [0, 1]; ``nan`` for a constant volume.
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"wedge_power_fraction: expected a volume (z, y, x), got shape {volume.shape}")
    spectrum = _rfft(volume)
    power = spectrum.real.astype(np.float64) ** 2 + spectrum.imag.astype(np.float64) ** 2
    power *= _rfft_weights(volume.shape[2])
    power[0, 0, 0] = 0.0
    total = float(power.sum())
    if total == 0.0:
        return float("nan")
    missing = wedge_mask(volume.shape, tilt_min_deg, tilt_max_deg, rfft=True).numpy() == 0
    return float(power[missing].sum()) / total
