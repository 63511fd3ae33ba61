"""Frequency grids: layouts, values against numpy, radial frequency, Fourier filtering."""
import math

import numpy as np
import pytest
import torch

from isonet2core.imaging import fourier


@pytest.mark.parametrize("shape", [(8, 10, 12), (7, 9, 11), (16, 16, 16), (1, 4, 5)])
@pytest.mark.parametrize("rfft", [False, True])
def test_grid_matches_numpy_layout(shape, rfft):
    kz, ky, kx = fourier.freq_grid(shape, rfft=rfft)
    assert torch.broadcast_shapes(kz.shape, ky.shape, kx.shape) == fourier.fft_shape(shape, rfft)
    assert np.allclose(kz.flatten().numpy(), np.fft.fftfreq(shape[0]))
    assert np.allclose(ky.flatten().numpy(), np.fft.fftfreq(shape[1]))
    expected_x = np.fft.rfftfreq(shape[2]) if rfft else np.fft.fftfreq(shape[2])
    assert np.allclose(kx.flatten().numpy(), expected_x)
    # the rfft layout has the shape torch's rfftn produces
    assert fourier.fft_shape(shape, rfft) == tuple(
        (torch.fft.rfftn if rfft else torch.fft.fftn)(torch.zeros(shape)).shape)


def test_radial_freq_values_and_dtype():
    r = fourier.radial_freq((8, 8, 8), rfft=True, dtype=torch.float64)
    assert r.dtype == torch.float64 and r.shape == (8, 8, 5)
    assert r[0, 0, 0] == 0
    assert r[0, 0, 4] == pytest.approx(0.5)          # Nyquist along x
    assert r[4, 4, 4] == pytest.approx(np.sqrt(3) / 2)
    assert r[1, 2, 3] == pytest.approx(np.sqrt(1 + 4 + 9) / 8)
    assert r[7, 0, 0] == pytest.approx(1 / 8)        # negative kz


def test_bad_shape_rejected():
    with pytest.raises(ValueError, match="3D"):
        fourier.freq_grid((8, 8))
    with pytest.raises(ValueError):
        fourier.radial_freq((8, 0, 8))


@pytest.mark.parametrize("shape", [(6, 8, 10), (5, 7, 9)])
def test_apply_fourier_filter_both_layouts(shape):
    g = torch.Generator().manual_seed(0)
    v = torch.randn(shape, generator=g, dtype=torch.float64)
    r_full = fourier.radial_freq(shape, dtype=torch.float64)
    r_half = fourier.radial_freq(shape, rfft=True, dtype=torch.float64)
    filt = lambda r: torch.exp(-(r / 0.2) ** 2)  # noqa: E731
    a = fourier.apply_fourier_filter(v, filt(r_full))
    b = fourier.apply_fourier_filter(v, filt(r_half))
    assert torch.allclose(a, b, atol=1e-12)
    # identity filter
    assert torch.allclose(fourier.apply_fourier_filter(v, torch.ones_like(r_half)), v, atol=1e-12)
    # batch broadcasting
    vb = torch.stack([v, 2 * v])[:, None]
    out = fourier.apply_fourier_filter(vb, filt(r_half))
    assert out.shape == vb.shape and torch.allclose(out[1, 0], 2 * a, atol=1e-12)
    with pytest.raises(ValueError, match="does not match"):
        fourier.apply_fourier_filter(v, torch.ones(3, 3, 3))


def test_shell_index_known_values():
    """floor(|k| n): DC in shell 0, the k-th frequency along an axis in shell k, the corner
    (-1/2, -1/2, -1/2) of an even cube in shell floor(sqrt(3) n / 2); rfft layout the same
    frequencies' shells."""
    n = 16
    full = fourier.shell_index((n, n, n))
    assert full.dtype == torch.int64 and full.shape == (n, n, n)
    assert int(full[0, 0, 0]) == 0
    assert [int(full[0, 0, k]) for k in range(n // 2 + 1)] == list(range(n // 2 + 1))
    assert int(full[0, 3, 4]) == 5                                 # 3-4-5
    assert int(full[n // 2, n // 2, n // 2]) == int(math.sqrt(3) * n / 2) == 13
    half = fourier.shell_index((n, n, n), rfft=True)
    assert torch.equal(half, full[..., : n // 2 + 1])
