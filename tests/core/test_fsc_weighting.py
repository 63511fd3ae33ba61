"""FSC weighting of the averaged half maps: weights, filter, tile-wise application, the gain in
correlation with the truth (predict's option: tests/core/test_predict.py)."""
import numpy as np
import pytest
import torch

from isonet2core.imaging import fourier, metrics
from isonet2core.imaging import fsc_weighting as fw
from isonet2core.io import mrcio


def test_weights_known_values():
    w = fw.fsc_weights(np.array([1.0, 1 / 3, 0.0, -0.2, np.nan]))
    np.testing.assert_allclose(w, [1.0, np.sqrt(0.5), 0.0, 0.0, 0.0], atol=1e-12)


def test_radial_filter_is_one_at_dc_and_interpolates_the_shells():
    freq, weights = np.array([0.1, 0.2, 0.3]), np.array([0.9, 0.5, 0.1])
    f = fw.radial_filter((20, 20, 20), freq, weights)
    assert f.shape == (20, 20, 11) and f[0, 0, 0] == 1.0
    assert f[0, 0, 2] == pytest.approx(0.9)      # |k| = 0.10 on a shell
    assert f[0, 3, 0] == pytest.approx(0.7)      # |k| = 0.15, between 0.9 and 0.5
    assert f[5, 0, 0] == pytest.approx(0.3)      # |k| = 0.25
    assert f[10, 10, 10] == pytest.approx(0.1)   # the corner, beyond the last shell


def _signal(shape, seed, sigma=2.0):
    """A smooth random density (Gaussian low-pass of white noise)."""
    rng = np.random.default_rng(seed)
    k = fourier.radial_freq(shape, rfft=True, dtype=torch.float64)
    lowpass = torch.exp(-2 * (np.pi * sigma * k) ** 2)
    white = torch.from_numpy(rng.standard_normal(shape))
    return fourier.apply_fourier_filter(white, lowpass).numpy().astype(np.float32)


@pytest.mark.parametrize("nz", [37, 100], ids=["one-fft", "tiles"])
def test_unit_weights_give_the_plain_average_block_by_block(nz):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, nz, 80, 18)).astype(np.float32)
    freq = np.linspace(0.05, 0.5, 10)
    tiled = {} if nz == 37 else {"tile": 16, "whole_voxels": 0}     # y tiled, x whole
    blocks = list(fw.weighted_average_planes([a, b], freq, np.ones(10), block_planes=16, **tiled))
    assert [len(x) for x in blocks] == [16] * (nz // 16) + [nz % 16]
    np.testing.assert_allclose(np.concatenate(blocks), (a + b) / 2, atol=1e-5)


@pytest.mark.parametrize("shape", [(70, 24, 24), (160, 24, 24), (150, 130, 140)],
                         ids=["one-fft", "z-blocks", "tiles"])
def test_tiles_agree_with_one_filter_of_the_whole_volume(shape, tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2,) + shape).astype(np.float32)
    freq, weights = np.linspace(1 / 24, 0.5, 12), fw.fsc_weights(np.linspace(0.95, -0.1, 12))
    tiled = {} if shape[0] == 70 else {"tile": 32, "whole_voxels": 0}
    halves = [mrcio.open_planes(mrcio.write_mrc(tmp_path / f"{k}.mrc", h, 1.0)) for k, h in enumerate((a, b))]
    out = np.concatenate(list(fw.weighted_average_planes(halves, freq, weights, block_planes=32, **tiled)))
    avg = torch.from_numpy((a + b) / 2)
    whole = fourier.apply_fourier_filter(avg, fw.radial_filter(avg.shape, freq, weights)).numpy()
    # periodic beyond the faces, like the one FFT: the margins' cut is the only difference
    error = np.abs(out - whole) / whole.std()
    assert error.max() < (1e-5 if shape[0] == 70 else 0.02 if shape[1] == 24 else 0.04)
    assert np.sqrt(np.mean(error ** 2)) < (1e-5 if shape[0] == 70 else 0.006)


def test_weighting_raises_the_correlation_with_the_truth_and_keeps_the_fsc():
    shape = (48, 48, 48)
    truth = _signal(shape, 2)
    rng = np.random.default_rng(3)
    noise = 2.0 * truth.std()
    h1 = truth + noise * rng.standard_normal(shape).astype(np.float32)
    h2 = truth + noise * rng.standard_normal(shape).astype(np.float32)
    freq, weights = fw.half_map_weights(h1, h2)
    assert weights[0] > 0.9 and weights[-1] < 0.3          # signal at low, noise at high frequency
    out = np.concatenate(list(fw.weighted_average_planes([h1, h2], freq, weights, block_planes=16)))
    avg = (h1 + h2) / 2
    assert metrics.pearson(out, truth) > metrics.pearson(avg, truth) + 0.1
    _, fsc_avg = metrics.fsc(avg, truth)
    _, fsc_out = metrics.fsc(out, truth)
    # a real isotropic filter leaves each shell's correlation (the slab edges aside) nearly unchanged
    assert np.abs(fsc_out - fsc_avg)[:16].max() < 0.05


def test_half_maps_of_different_shapes_are_refused():
    with pytest.raises(ValueError, match="different shapes"):
        fw.half_map_weights(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))

