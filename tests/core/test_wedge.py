"""Missing-wedge masks: convention, measured fraction, symmetry, layouts, rotation."""
import math

import numpy as np
import pytest
import torch

from isonet2core.imaging import fourier, wedge


def _sphere_fraction(mask, shape, radius=0.45):
    r = fourier.radial_freq(shape)
    inside = (r <= radius) & (r > 0)
    return float(mask[inside].mean())


@pytest.mark.parametrize("tmin,tmax", [(-60, 60), (-50, 40), (-30, 70)])
def test_measured_fraction_in_sphere(tmin, tmax):
    shape = (64, 64, 64)
    m = wedge.wedge_mask(shape, tmin, tmax)
    expected = wedge.measured_fraction(tmin, tmax)
    assert expected == pytest.approx((tmax - tmin) / 180)
    assert _sphere_fraction(m, shape) == pytest.approx(expected, abs=0.015)


def test_convention_on_known_points():
    shape = (32, 8, 32)
    m = wedge.wedge_mask(shape, -50, 40)
    kz, _, kx = fourier.freq_grid(shape)
    assert m[0, 0, 0] == 1                             # DC
    assert m[0, 3, 5] == 1                             # kz = 0 plane (0 degrees) measured
    assert m[5, 0, 0] == 0 and m[-5, 0, 0] == 0       # kz axis (90 degrees) missing
    # alpha = atan(kz/kx): (kz, kx) = (3, 4)/32 -> 36.9 deg measured; (4, 3) -> 53.1 missing
    assert m[3, 0, 4] == 1 and m[4, 0, 3] == 0
    # negative angles: -36.9 and -53.1 measured (tilt_min -50 -> -53.1 missing)
    assert m[-3, 0, 4] == 1 and m[-4, 0, 4] == 1 and m[-4, 0, 3] == 0
    # boundary angle 45 degrees is included for a +-45 range
    m45 = wedge.wedge_mask(shape, -45, 45)
    assert m45[5, 2, 5] == 1 and m45[-5, 2, 5] == 1 and m45[6, 2, 5] == 0
    # a range reaching 90 measures the kz axis
    assert wedge.wedge_mask(shape, -10, 90)[5, 0, 0] == 1
    # independent of ky
    assert torch.equal(m, m[:, :1, :].expand_as(m))
    assert set(torch.unique(m).tolist()) == {0.0, 1.0}


def _mirror_kz(m):
    # kz -> -kz in the unshifted layout: index i -> (-i) mod n
    n = m.shape[0]
    return m[(-torch.arange(n)) % n]


def test_symmetric_range_mirror_and_friedel():
    shape = (20, 6, 24)
    m = wedge.wedge_mask(shape, -60, 60)
    assert torch.equal(m, _mirror_kz(m))
    a = wedge.wedge_mask(shape, -50, 40)
    assert not torch.equal(a, _mirror_kz(a))
    # Friedel symmetry: (kz, ky, kx) and (-kz, -ky, -kx)
    idx = [(-torch.arange(n)) % n for n in shape]
    friedel = a[idx[0]][:, idx[1]][:, :, idx[2]]
    assert torch.equal(a, friedel)


@pytest.mark.parametrize("shape", [(16, 16, 16), (15, 20, 33), (32, 12, 18)])
def test_rfft_mask_is_cropped_full_mask(shape):
    full = wedge.wedge_mask(shape, -50, 40)
    half = wedge.wedge_mask(shape, -50, 40, rfft=True, dtype=torch.bool)
    assert half.shape == fourier.fft_shape(shape, rfft=True) and half.dtype == torch.bool
    assert torch.equal(full[..., : shape[2] // 2 + 1].bool(), half)


def test_invalid_ranges():
    with pytest.raises(ValueError):
        wedge.wedge_mask((8, 8, 8), 60, -60)
    with pytest.raises(ValueError):
        wedge.measured_fraction(-100, 60)


# 90-degree rotation about y acting on (z, y, x) vectors: (z, y, x) -> (x, y, -z)
R_Y90 = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=float)


def _rot90_matching(a):
    """torch.rot90 of a centred (odd-sized) array realising R_Y90 about the centre voxel."""
    # out[z, y, x] = a[R^T (z, y, x)] = a[-x, y, z]: rot90 in the (z, x) plane
    return torch.rot90(a, 1, dims=(2, 0))


def test_rotation_by_90_equals_rot90_of_shifted_mask():
    n = 33
    m = wedge.wedge_mask((n, n, n), -50, 40)
    rotated = wedge.rotate_fourier_mask(m, R_Y90)
    expected = torch.fft.ifftshift(_rot90_matching(torch.fft.fftshift(m)))
    assert torch.allclose(rotated, expected, atol=1e-5)
    # a rotated -50..40 wedge is a different mask, with the same measured count in the sphere
    assert not torch.equal(rotated.round(), m)
    assert _sphere_fraction(rotated, (n,) * 3, 0.4) == pytest.approx(_sphere_fraction(m, (n,) * 3, 0.4), abs=0.01)


def test_rotation_matches_real_space_rotation():
    """rotate_fourier_mask turns |FFT(v)| the way the real-space rotation turns v."""
    n = 17
    g = torch.Generator().manual_seed(3)
    v = torch.randn((n, n, n), generator=g, dtype=torch.float64)
    v_rot = _rot90_matching(v)    # rotation about the centre voxel (translation-free in |FFT|)
    amp = torch.fft.fftn(v).abs()
    amp_rot = torch.fft.fftn(v_rot).abs()
    assert torch.allclose(wedge.rotate_fourier_mask(amp, R_Y90), amp_rot, atol=1e-9)


def test_identity_and_arbitrary_rotation():
    n = 24
    m = wedge.wedge_mask((n, n, n), -60, 60)
    assert torch.allclose(wedge.rotate_fourier_mask(m, np.eye(3)), m, atol=1e-6)
    # rotation about the tilt axis y by 20 degrees turns a -60..60 wedge into -40..80 (or -80..40)
    a = math.radians(20)
    r = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rotated = wedge.rotate_fourier_mask(m, r)
    assert torch.all((rotated >= -1e-6) & (rotated <= 1 + 1e-6))
    plus = wedge.wedge_mask((n, n, n), -40, 80)
    minus = wedge.wedge_mask((n, n, n), -80, 40)
    r_grid = fourier.radial_freq((n, n, n))
    core = (r_grid > 0.05) & (r_grid < 0.4)
    agree = [float(((rotated > 0.5) == (w > 0.5))[core].float().mean()) for w in (plus, minus)]
    assert max(agree) > 0.97
    with pytest.raises(ValueError, match="rotation"):
        wedge.rotate_fourier_mask(m, np.diag([1.0, 1.0, -1.0]))
