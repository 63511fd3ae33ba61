"""CTF: known values, analytic zeros, clipping, envelope, phase flip, Wiener filter limits."""
import math

import numpy as np
import pytest
import torch

from isonet2core.config import Microscope
from isonet2core.imaging import ctf, fourier

OPTICS = dict(defocus_a=20000.0, voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.1)


def test_electron_wavelength_known_values():
    assert ctf.electron_wavelength_a(300) == pytest.approx(0.01969, abs=5e-6)
    assert ctf.electron_wavelength_a(200) == pytest.approx(0.02508, abs=5e-6)
    assert ctf.electron_wavelength_a(100) == pytest.approx(0.03701, abs=5e-6)
    with pytest.raises(ValueError):
        ctf.electron_wavelength_a(0)


@pytest.mark.parametrize("ac", [0.0, 0.07, 0.1, 0.3])
def test_ctf_at_dc_is_amplitude_contrast(ac):
    c = ctf.ctf_1d(64, 5.0, 30000, 300, 2.7, ac)
    assert c[0] == pytest.approx(ac, abs=1e-12)
    t3 = ctf.ctf_3d((8, 8, 8), 5.0, 30000, 300, 2.7, ac)
    assert float(t3[0, 0, 0]) == pytest.approx(ac, abs=1e-6)
    # positive (protein dark kept) at low frequency
    assert c[1] > ac


def test_ctf_1d_matches_closed_form():
    n, apix = 200, 4.0
    f = ctf.ctf_1d_freq_per_a(n, apix)
    assert f[0] == 0 and f[-1] == pytest.approx(0.5 / apix)
    lam = ctf.electron_wavelength_a(300)
    chi = math.pi * lam * 20000 * f ** 2 - 0.5 * math.pi * 2.7e7 * lam ** 3 * f ** 4
    expected = np.sin(chi + np.arcsin(0.1))
    assert np.allclose(ctf.ctf_1d(n, apix, **OPTICS), expected, atol=1e-12)


@pytest.mark.parametrize("defocus_a,apix", [(20000.0, 4.0), (50000.0, 5.4), (8000.0, 2.0)])
def test_zeros_at_analytic_roots(defocus_a, apix):
    optics = dict(OPTICS, defocus_a=defocus_a)
    n = 2000
    freq = ctf.ctf_1d_freq_per_a(n, apix)
    c = ctf.ctf_1d(n, apix, **optics)
    zeros = ctf.ctf_zero_freqs(50, **optics)
    zeros = zeros[zeros < freq[-1]]
    assert len(zeros) >= 3
    step = freq[1] - freq[0]
    for z in zeros:
        i = int(np.searchsorted(freq, z))
        # the sampled curve changes sign within one sample spacing of the analytic root
        assert np.sign(c[i - 1]) != np.sign(c[i]) or abs(c[i]) < 1e-9, z
        assert abs(freq[i] - z) <= step
    # and every sign change below the last root is one of the analytic roots
    changes = freq[1:][np.sign(c[1:]) != np.sign(c[:-1])]
    changes = changes[changes <= zeros[-1] + step]
    assert len(changes) == len(zeros)
    # exact values at the roots
    t = ctf.ctf_of_freq(torch.from_numpy(zeros), **optics)
    assert torch.allclose(t, torch.zeros_like(t), atol=1e-9)


def test_first_peak():
    f0 = ctf.first_peak_freq(**OPTICS)
    t0 = float(ctf.ctf_of_freq(torch.tensor(f0, dtype=torch.float64), **OPTICS))
    assert t0 == pytest.approx(1.0, abs=1e-12)
    # it is the first maximum: the CTF rises up to f0 and lies below the first zero
    freq = torch.linspace(0, f0, 500, dtype=torch.float64)
    t = ctf.ctf_of_freq(freq, **OPTICS)
    assert torch.all(torch.diff(t) > 0)
    assert f0 < ctf.ctf_zero_freqs(1, **OPTICS)[0]
    # no defocus: the CTF decreases from k = 0, so the first peak is at 0
    assert ctf.first_peak_freq(0.0, 300, 2.7, 0.1) == 0.0


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_clip_modes_keep_values_above_peak_and_are_continuous(mode):
    f0 = ctf.first_peak_freq(**OPTICS)
    freq = np.linspace(0, 0.2, 4001)
    c = ctf.ctf_of_freq(torch.from_numpy(freq), **OPTICS).numpy()
    out = ctf.clip_first_peak(c, freq, f0, mode, peak_value=1.0)
    assert isinstance(out, np.ndarray) and out.shape == c.shape
    above = freq >= f0
    assert np.array_equal(out[above], c[above])
    # continuity at f0: the curve just below meets the CTF just above
    eps = 1e-11
    fb = np.array([f0 - eps, f0 + eps])
    tb = ctf.ctf_of_freq(torch.from_numpy(fb), **OPTICS).numpy()
    ob = ctf.clip_first_peak(tb, fb, f0, mode, peak_value=1.0)
    assert abs(ob[0] - ob[1]) < 1e-6
    below = ~above
    if mode == 1:
        assert np.all(out[below] == 1.0)
    if mode in (2, 3):
        assert out[0] == pytest.approx(1.0)          # the peak value at DC, as IsoNet2 defines it
        assert np.all(out[below] >= c[below])        # never below the CTF
        x = freq[below] / f0
        curve = 1 - np.sin(np.pi * x / 2) if mode == 2 else np.cos(np.pi * x / 2)
        assert np.allclose(out[below], np.maximum(curve, c[below]))
        # it falls from DC until it meets the rising CTF, then follows it
        assert np.argmin(out[below]) not in (0, below.sum() - 1)


def test_clip_validation_and_torch_input():
    t = torch.linspace(0, 1, 5)
    with pytest.raises(ValueError, match="0, 1, 2 or 3"):
        ctf.clip_first_peak(t, t, 0.5, 4)
    out = ctf.clip_first_peak(t, t, 0.5, 1)
    assert isinstance(out, torch.Tensor) and torch.equal(out, torch.tensor([1, 1, 0.5, 0.75, 1.0]))


def test_bfactor_envelope_known_value():
    assert ctf.bfactor_envelope(np.array([0.1]), 200.0)[0] == pytest.approx(math.exp(-0.5))
    assert float(ctf.bfactor_envelope(torch.tensor([0.05]), 400.0)[0]) == pytest.approx(math.exp(-0.25))
    assert ctf.bfactor_envelope(np.array([0.3]), 0.0)[0] == 1.0


def test_effective_ctf():
    m = Microscope(pixel_size_a=10.0, **OPTICS)
    shape = (16, 32, 32)
    freq = fourier.radial_freq(shape, rfft=True, dtype=torch.float64) / 10.0
    t = ctf.ctf_3d(shape, 10.0, **OPTICS, dtype=torch.float64)
    f0 = ctf.first_peak_freq(**OPTICS)
    eff = ctf.effective_ctf(shape, m, bfactor=300.0, clip_first_peak_mode=1, dtype=torch.float64)
    env = torch.exp(-300.0 * freq ** 2 / 4)
    above = freq >= f0
    # the envelope before and after clipping, as the IsoNet2 program: exp(-B f^2 / 2) above f0
    assert torch.allclose(eff[above], (t * torch.exp(-300.0 * freq ** 2 / 2))[above], atol=1e-12)
    peak_env = math.exp(-300.0 * f0 ** 2 / 4)
    assert torch.allclose(eff[~above], peak_env * env[~above], atol=1e-12)   # P E(f0) x E below
    # a negative B sharpens: above f0 the curve grows by exp(+|B| f^2 / 2)
    sharp = ctf.effective_ctf(shape, m, bfactor=-300.0, clip_first_peak_mode=1,
                              dtype=torch.float64)
    assert torch.allclose(sharp[above], (t * torch.exp(300.0 * freq ** 2 / 2))[above], atol=1e-12)
    none = ctf.effective_ctf(shape, m, bfactor=0.0, clip_first_peak_mode=0, dtype=torch.float64)
    assert torch.allclose(none, t)
    cos = ctf.effective_ctf(shape, m, bfactor=0.0, clip_first_peak_mode=3, dtype=torch.float64)
    assert float(cos[0, 0, 0]) == pytest.approx(float(t[above].max()), rel=1e-3)   # the peak value at DC
    with pytest.raises(ValueError, match="finite"):
        ctf.effective_ctf(shape, m, bfactor=float("nan"), clip_first_peak_mode=1)


def test_phase_flip():
    m = Microscope(pixel_size_a=8.0, **OPTICS)
    shape = (8, 24, 24)
    sign = ctf.ctf_sign(shape, m)
    t = ctf.ctf_3d(shape, 8.0, **OPTICS)
    assert set(torch.unique(sign).tolist()) == {-1.0, 1.0}
    assert torch.all(sign * t >= 0)
    # flipping a CTF-modulated map gives |T| applied to the original
    g = torch.Generator().manual_seed(1)
    v = torch.randn(shape, generator=g, dtype=torch.float64)
    recorded = fourier.apply_fourier_filter(v, t.double())
    flipped = ctf.phase_flip(recorded, m)
    assert torch.allclose(flipped, fourier.apply_fourier_filter(v, t.double().abs()), atol=1e-6)


def test_ssnr_formula():
    k = torch.tensor([0.0, 0.25, 0.5], dtype=torch.float64)
    s = ctf.ssnr(k, 10.0, snrfalloff=1.0, deconvstrength=1.0, highpassnyquist=0.02)
    assert float(s[0]) == pytest.approx(1e-6)                           # high-pass kills DC
    assert float(s[1]) == pytest.approx(10 * math.exp(-0.5 * 100 / 10) * 2 + 1e-6)
    assert float(s[2]) == pytest.approx(10 * math.exp(-1.0 * 100 / 10) * 2 + 1e-6)
    half_cut = torch.tensor([0.005], dtype=torch.float64)               # x = 0.01 = cut-off / 2
    s = ctf.ssnr(half_cut, 10.0, snrfalloff=0.0, deconvstrength=0.0, highpassnyquist=0.02)
    assert float(s[0]) == pytest.approx(1.0 + 1e-6)                    # 1 - cos(pi / 2) = 1


def test_wiener_filter_limits():
    m = Microscope(pixel_size_a=10.0, **OPTICS)
    shape = (16, 32, 32)
    kwargs = dict(snrfalloff=1.0, highpassnyquist=0.02, dtype=torch.float64)
    t = ctf.ctf_3d(shape, 10.0, **OPTICS, dtype=torch.float64)
    # very high SSNR: W ~ 1/T away from the zeros and DC
    w = ctf.wiener_filter(shape, m, deconvstrength=12.0, **kwargs)
    ok = (t.abs() > 0.2)
    ok[0, 0, 0] = False
    assert torch.allclose(w[ok], 1.0 / t[ok], rtol=1e-3)
    # T -> 0 gives W -> 0; W has the sign of T (contrast kept), |W| <= 1 / (2 sqrt(1/SSNR))
    w1 = ctf.wiener_filter(shape, m, deconvstrength=1.0, **kwargs)
    assert torch.all(w1 * t >= 0)
    zero = ctf.ctf_zero_freqs(1, **OPTICS)[0]
    # pixel size chosen so that the x Nyquist of an even-sized volume lies on the first zero
    wz = ctf.wiener_filter((1, 1, 64), Microscope(pixel_size_a=0.5 / zero, **OPTICS),
                           deconvstrength=1.0, **kwargs)
    assert abs(float(wz[0, 0, -1])) < 1e-9
    assert float(w1[0, 0, 0]) == pytest.approx(0.0, abs=1e-6)
    # phaseflipped data: |T| in the numerator, so W >= 0 everywhere
    wf = ctf.wiener_filter(shape, m, deconvstrength=1.0, phaseflipped=True, **kwargs)
    assert torch.all(wf >= 0) and torch.allclose(wf, w1.abs())
    # the STAR's amplitude contrast is used
    m2 = Microscope(pixel_size_a=10.0, **dict(OPTICS, amplitude_contrast=0.3))
    assert not torch.allclose(ctf.wiener_filter(shape, m2, deconvstrength=1.0, **kwargs), w1)


def test_ctf_sign_sampled_as_the_isonet2_program_samples_it():
    """``sampling="isonet2-program"``: the 1D CTF at ``i / (2 n px)`` (i < n), read by linear
    interpolation at ``min(1, |k| / Nyquist) (n - 1)``; the zeros move by (n - 1) / n, so some
    voxels flip against the exact sign (the program's models were trained so)."""
    n, mic = 32, Microscope(pixel_size_a=8.0, defocus_a=30000.0, voltage_kv=300.0, cs_mm=2.7,
                            amplitude_contrast=0.07)
    lam = 12.2643247 / math.sqrt(300e3 * (1 + 300e3 * 0.978466e-6))

    def t(f):   # sin(chi + phi_A), written out
        chi = math.pi * lam * 30000.0 * f ** 2 - math.pi / 2 * 2.7e7 * lam ** 3 * f ** 4
        return np.sin(chi + math.asin(0.07))

    samples = t(np.arange(n) / (2.0 * n * 8.0))
    k = np.fft.fftfreq(n)
    r = np.minimum(1.0, np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2) / 0.5)
    expected = np.where(np.interp(r, np.linspace(0, 1, n), samples) >= 0, 1.0, -1.0)
    got = ctf.ctf_sign((n, n, n), mic, rfft=False, sampling="isonet2-program").numpy()
    np.testing.assert_array_equal(got, expected)
    exact = ctf.ctf_sign((n, n, n), mic, rfft=False).numpy()
    assert 0.05 < np.mean(got != exact) < 0.5     # corners clipped at Nyquist, zeros moved
    np.testing.assert_array_equal(ctf.ctf_sign((n, n, n), mic, sampling="isonet2-program").numpy(),
                                  got[..., :n // 2 + 1])
    with pytest.raises(ValueError, match="cube"):
        ctf.ctf_sign((n, n, n + 2), mic, sampling="isonet2-program")
