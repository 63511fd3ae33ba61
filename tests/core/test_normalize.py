"""Global normalisation: central-slice statistics, round trip, errors."""
import numpy as np
import pytest
import torch

from isonet2core.imaging import normalize as nz


def test_central_slices():
    assert nz.central_slices(1) == slice(0, 1)
    assert nz.central_slices(4) == slice(1, 3)
    assert nz.central_slices(64) == slice(16, 48)
    assert nz.central_slices(7) == slice(1, 5)


def test_stats_use_only_the_central_slices(tmp_path):
    rng = np.random.default_rng(0)
    vol = rng.normal(5.0, 2.0, size=(40, 24, 20)).astype(np.float32)
    vol[:10] = 1000.0   # top and bottom quarters are ignored
    vol[30:] = -1000.0
    mean, std = nz.normalization_stats(vol)
    centre = vol[10:30].astype(np.float64)
    assert mean == pytest.approx(centre.mean(), rel=1e-10)
    assert std == pytest.approx(centre.std(), rel=1e-10)
    # memory map + chunked accumulation give the same numbers (mean >> std: no cancellation)
    path = tmp_path / "v.npy"
    np.save(path, vol + 1e6)
    old = nz._CHUNK_VOXELS
    nz._CHUNK_VOXELS = 24 * 20 * 3  # three slices per chunk
    try:
        m2, s2 = nz.normalization_stats(np.load(path, mmap_mode="r"))
    finally:
        nz._CHUNK_VOXELS = old
    stored = np.load(path)[10:30].astype(np.float64)
    assert m2 == pytest.approx(stored.mean(), rel=1e-12)
    assert s2 == pytest.approx(stored.std(), rel=1e-9)


def test_normalize_round_trip_numpy_and_torch():
    rng = np.random.default_rng(1)
    vol = rng.normal(-3.0, 0.5, size=(16, 8, 8))
    mean, std = nz.normalization_stats(vol)
    n = nz.normalize(vol, mean, std)
    assert abs(n[4:12].mean()) < 1e-12 and n[4:12].std() == pytest.approx(1.0)
    np.testing.assert_allclose(nz.denormalize(n, mean, std), vol, atol=1e-12)
    t = torch.from_numpy(vol)
    torch.testing.assert_close(nz.denormalize(nz.normalize(t, mean, std), mean, std), t)


@pytest.mark.parametrize("bad", ["constant", "nan", "inf", "2d"])
def test_errors_name_the_tomogram(bad):
    vol = np.ones((8, 4, 4), np.float32)
    if bad == "nan":
        vol = np.random.default_rng(0).normal(size=(8, 4, 4))
        vol[4, 1, 1] = np.nan
    elif bad == "inf":
        vol = np.random.default_rng(0).normal(size=(8, 4, 4))
        vol[3, 0, 0] = np.inf
    elif bad == "2d":
        vol = np.ones((4, 4))
    with pytest.raises(ValueError, match="tomo_007.mrc"):
        nz.normalization_stats(vol, name="tomo_007.mrc")
