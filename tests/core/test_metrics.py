"""Metrics: known values of correlation, PSNR, FSC, resolution, missing-wedge FSC and power."""
import math

import numpy as np
import pytest

from isonet2core.imaging import fourier, metrics, wedge

SHAPE = (48, 96, 96)


def _noise(seed, shape=SHAPE):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _filtered(volume, keep):
    """``volume`` with its rfft points outside ``keep`` (bool, rfft layout) set to zero."""
    return np.fft.irfftn(np.fft.rfftn(volume) * keep, s=volume.shape).astype(np.float32)


def test_pearson_known_values():
    x = _noise(0)
    assert metrics.pearson(x, 2 * x + 1) == pytest.approx(1.0, abs=1e-9)
    assert metrics.pearson(x, -0.5 * x) == pytest.approx(-1.0, abs=1e-9)
    # y = x + e with e of the same variance and orthogonal to x: r = 1 / sqrt(2)
    e = _noise(1).astype(np.float64)
    xc = x - x.mean()
    e -= e.mean()
    e -= xc * (xc.ravel() @ e.ravel()) / (xc.ravel() @ xc.ravel())
    e *= xc.std() / e.std()
    assert metrics.pearson(x, xc + e) == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    assert math.isnan(metrics.pearson(np.ones(SHAPE), x))
    with pytest.raises(ValueError, match="shape"):
        metrics.pearson(x, x[:-1])


def test_psnr_of_a_known_mse_after_the_affine_fit():
    b = _noise(2).astype(np.float64)
    e = 0.1 * _noise(3).astype(np.float64)
    bc = b - b.mean()
    e -= e.mean()
    e -= bc * (bc.ravel() @ e.ravel()) / (bc.ravel() @ bc.ravel())  # orthogonal to b and 1
    a = 3.0 * (b + e) + 5.0          # another scale and offset: the fit maps it back onto b + e
    # the regression of b on a shrinks: MSE = var(b) (1 - r^2) = var(b) var(e) / (var(b) + var(e))
    mse = b.var() * np.mean(e ** 2) / (b.var() + np.mean(e ** 2))
    expected = 10 * math.log10((b.max() - b.min()) ** 2 / mse)
    assert metrics.psnr(a, b) == pytest.approx(expected, abs=1e-6)
    assert metrics.psnr(-a, b) == pytest.approx(expected, abs=1e-6)   # sign-blind, see pearson
    assert metrics.psnr(2 * b - 1, b) > 250        # float64 rounding only
    # a constant map predicts the mean: MSE = var(b)
    assert metrics.psnr(np.zeros(SHAPE), b) == pytest.approx(
        10 * math.log10((b.max() - b.min()) ** 2 / b.var()), abs=1e-6)
    with pytest.raises(ValueError, match="constant"):
        metrics.psnr(b, np.ones(SHAPE))


def test_fsc_of_a_map_with_itself_is_one_in_every_shell():
    x = _noise(4)
    freq, curve = metrics.fsc(x, 3 * x - 2)
    assert len(freq) == max(SHAPE) // 2
    assert freq[0] == pytest.approx(1 / 96) and freq[-1] == pytest.approx(0.5)
    assert np.all(np.diff(freq) > 0)
    np.testing.assert_allclose(curve, 1.0, atol=1e-5)
    # a large offset (DC) neither enters the shells nor makes them look empty
    _, curve = metrics.fsc(x + 1000.0, x)
    np.testing.assert_allclose(curve, 1.0, atol=1e-4)
    freq, curve = metrics.fsc(x, x, n_shells=10)
    assert len(freq) == 10 and freq[-1] == pytest.approx(0.5)


def test_fsc_of_independent_noise_is_within_three_sigma_of_zero():
    freq, curve = metrics.fsc(_noise(5), _noise(6))
    # voxels per shell in the full spectrum (same shell rule as the module docstring)
    r = fourier.radial_freq(SHAPE).numpy()
    width = 0.5 / len(freq)
    shell = np.rint(r / width).astype(int)
    counts = np.bincount(shell.ravel(), minlength=len(freq) + 1)[1:len(freq) + 1]
    z = (curve * np.sqrt(counts))[3:]              # in units of the expected spread 1/sqrt(count)
    # within 3 sigma except at most two of the ~45 shells (0.13 expected), none beyond 4.5 sigma
    assert np.sum(np.abs(z) >= 3) <= 2 and np.all(np.abs(z) < 4.5)
    # the curve is not trivially zero either: its spread matches 1/sqrt(count)
    assert 0.7 < np.sqrt(np.mean(z ** 2)) < 1.3


def test_fsc_resolution_of_a_low_passed_copy():
    x = _noise(7)
    r = fourier.radial_freq(SHAPE, rfft=True).numpy()
    low = _filtered(x, r <= 0.25)                   # hard low-pass at 0.25 cycles/voxel
    freq, curve = metrics.fsc(x, low)
    assert np.all(curve[freq < 0.24] > 0.99) and np.all(np.abs(curve[freq > 0.27]) < 0.05)
    assert metrics.fsc_resolution(freq, curve, 10.0) == pytest.approx(40.0, abs=2.0)
    assert metrics.fsc_resolution(freq, curve, 5.0) == pytest.approx(20.0, abs=1.0)


def test_fsc_resolution_interpolation_and_limits():
    freq = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    # crossing of 0.5 half way between 0.2 (0.9) and 0.3 (0.1): f = 0.25 -> 4 px
    assert metrics.fsc_resolution(freq, [1.0, 0.9, 0.1, 0.0, 0.0], 2.0, threshold=0.5) == pytest.approx(8.0)
    # nan shells are skipped
    assert metrics.fsc_resolution(freq, [np.nan, 0.9, 0.1, 0.0, 0.0], 2.0, threshold=0.5) == pytest.approx(8.0)
    # never below: resolution reaches the last shell (Nyquist)
    assert metrics.fsc_resolution(freq, [1.0] * 5, 2.0) == pytest.approx(4.0)
    # below from the first shell: nothing resolved
    assert metrics.fsc_resolution(freq, [0.0] * 5, 2.0) == math.inf
    assert math.isnan(metrics.fsc_resolution(freq, [np.nan] * 5, 2.0))
    with pytest.raises(ValueError, match="pixel_size"):
        metrics.fsc_resolution(freq, [1.0] * 5, 0.0)


def test_mean_fsc():
    freq = np.array([0.1, 0.2, 0.3, 0.4])
    assert metrics.mean_fsc(freq, [1.0, 0.5, np.nan, 0.0]) == pytest.approx(0.5)
    assert metrics.mean_fsc(freq, [1.0, 0.5, np.nan, 0.0], f_max=0.2) == pytest.approx(0.75)
    assert math.isnan(metrics.mean_fsc(freq, [np.nan] * 4))


def test_wedge_fsc_sees_only_the_missing_wedge():
    tilt = (-50.0, 40.0)
    x = _noise(8)
    freq, curve = metrics.wedge_fsc(x, x, *tilt)
    finite = np.isfinite(curve)
    assert finite.sum() >= len(freq) - 3          # only the lowest shells lack missing points
    np.testing.assert_allclose(curve[finite], 1.0, atol=1e-5)
    measured = wedge.wedge_mask(SHAPE, *tilt, rfft=True).numpy() == 1
    recorded = _filtered(x, measured)              # what a tilt series of that range holds
    _, in_wedge = metrics.wedge_fsc(recorded, x, *tilt)
    np.testing.assert_array_equal(in_wedge[finite], 0.0)   # no power in the wedge: nothing recovered
    assert np.all(np.isnan(in_wedge[~finite]))
    noisy = recorded + 0.1 * _noise(10)
    _, in_wedge = metrics.wedge_fsc(noisy, x, *tilt)
    assert np.all(np.abs(in_wedge[freq > 0.1]) < 0.1)      # noise there does not correlate
    _, overall = metrics.fsc(recorded, x)
    assert np.all(overall[3:] > 0.5)               # ...while the overall FSC is high
    # a map that holds only the wedge: wedge FSC 1, and it cannot see the measured region
    wedge_only = _filtered(x, ~measured)
    _, curve = metrics.wedge_fsc(wedge_only, x, *tilt)
    np.testing.assert_allclose(curve[np.isfinite(curve)], 1.0, atol=1e-5)


def test_wedge_power_fraction():
    tilt = (-60.0, 60.0)
    x = _noise(9)
    measured = wedge.wedge_mask(SHAPE, *tilt, rfft=True).numpy()
    assert metrics.wedge_power_fraction(_filtered(x, measured == 1), *tilt) < 1e-6
    assert metrics.wedge_power_fraction(_filtered(x, measured == 0), *tilt) == pytest.approx(1.0, abs=1e-6)
    # white noise: the missing share of the grid's points (corners lie in measured directions)
    expected = float((measured == 0).mean())
    assert metrics.wedge_power_fraction(x, *tilt) == pytest.approx(expected, abs=0.01)
    assert 0.2 < expected < 1 - wedge.measured_fraction(*tilt)
    assert math.isnan(metrics.wedge_power_fraction(np.ones(SHAPE), *tilt))
