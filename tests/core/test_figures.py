"""Report figures: orthoslices, contrast, the Fourier XZ slice (missing wedge), rendered PNGs."""
import numpy as np
import pytest
import torch

from isonet2core.imaging import wedge
from isonet2core.io import mrcio
from isonet2core.report import figures


def _ramp_volume(shape=(16, 24, 32)):
    z, y, x = np.meshgrid(*[np.arange(n, dtype=np.float32) for n in shape], indexing="ij")
    return z, y, x


def test_orthoslice_shapes_and_slab_mean():
    z, y, x = _ramp_volume()
    assert figures.orthoslice(z, "xy").shape == (24, 32)
    assert figures.orthoslice(z, "xz").shape == (16, 32)
    assert figures.orthoslice(z, "yz").shape == (16, 24)
    # the mean of 5 slices centred on the middle: z 6..10 -> 8, y 10..14 -> 12, x 14..18 -> 16
    assert np.allclose(figures.orthoslice(z, "xy", n_average=5), 8.0)
    assert np.allclose(figures.orthoslice(y, "xz", n_average=5), 12.0)
    assert np.allclose(figures.orthoslice(x, "yz", n_average=5), 16.0)
    # near an edge the slab is shifted inside: z 0..4 -> 2; z 11..15 -> 13
    assert np.allclose(figures.orthoslice(z, "xy", index=0, n_average=5), 2.0)
    assert np.allclose(figures.orthoslice(z, "xy", index=15, n_average=5), 13.0)
    assert np.allclose(figures.orthoslice(z, "xy", index=3, n_average=1), 3.0)
    assert figures.orthoslice(z, "xy").dtype == np.float32


def test_orthoslice_rejects_bad_input():
    z, _, _ = _ramp_volume()
    with pytest.raises(ValueError, match="plane"):
        figures.orthoslice(z, "xx")
    with pytest.raises(ValueError, match="outside"):
        figures.orthoslice(z, "xy", index=16)
    with pytest.raises(ValueError, match="n_average"):
        figures.orthoslice(z, "xy", n_average=0)
    with pytest.raises(ValueError, match="3-D"):
        figures.orthoslice(z[0], "xy")


def test_orthoslice_of_memory_map_equals_in_memory(tmp_path):
    vol = np.random.default_rng(0).standard_normal((12, 20, 28)).astype(np.float32)
    path = mrcio.write_mrc(tmp_path / "v.mrc", vol, 5.0)
    mapped = mrcio.open_mrc(path)
    for plane in figures.PLANES:
        assert np.allclose(figures.orthoslice(mapped, plane), figures.orthoslice(vol, plane))


def test_contrast_stretch_range_and_limits():
    image = np.random.default_rng(1).standard_normal((50, 60)) * 7 + 3
    out = figures.contrast_stretch(image)
    assert out.shape == image.shape and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    lo, hi = figures.percentile_limits(image, (1, 99))
    assert lo == pytest.approx(np.percentile(image, 1)) and hi == pytest.approx(np.percentile(image, 99))
    # about 1% of the values clip at each end
    assert 0.005 < np.mean(out == 0.0) < 0.02 and 0.005 < np.mean(out == 1.0) < 0.02
    assert figures.percentile_limits(np.full((4, 4), 2.0)) == (1.5, 2.5)
    with pytest.raises(ValueError, match="percentiles"):
        figures.percentile_limits(image, (50, 10))


def _wedged_noise(shape, tilt_min, tilt_max, seed=0):
    noise = torch.from_numpy(np.random.default_rng(seed).standard_normal(shape))
    mask = wedge.wedge_mask(shape, tilt_min, tilt_max, dtype=torch.float64)
    return torch.fft.ifftn(torch.fft.fftn(noise) * mask).real.numpy()


def test_fourier_slice_shows_the_missing_wedge():
    vol = _wedged_noise((48, 40, 64), -60, 60)
    fs = figures.fourier_xz_slice(vol, taper=0.0)
    assert fs.log_amplitude.shape == (48, 64) and fs.crop == (48, 32, 64)
    assert fs.kz[24] == 0.0 and fs.kx[32] == 0.0          # DC in the centre
    inside = fs.sector_mean(70, 90)                       # around the +kz axis: missing
    inside_neg = fs.sector_mean(-90, -70)
    outside = fs.sector_mean(-50, 50)                     # around the kx axis: measured
    assert outside - inside > 5 and outside - inside_neg > 5   # decades: numerically empty
    # the default taper blurs the wedge edges a little but keeps it unmistakable
    tapered = figures.fourier_xz_slice(vol)
    assert tapered.sector_mean(-50, 50) - tapered.sector_mean(70, 90) > 1.0
    # the measured region of white noise is flat: about 0 decades of spread
    assert abs(fs.sector_mean(-50, 0) - fs.sector_mean(0, 50)) < 0.1


def test_fourier_slice_orientation_with_an_asymmetric_range():
    # measured angles atan(kz/kx) in [-50, 30]: +40..85 and -85..-60 missing, -40..20 measured
    vol = _wedged_noise((48, 16, 48), -50, 30, seed=2)
    fs = figures.fourier_xz_slice(vol, taper=0.0)
    measured = fs.sector_mean(-40, 20)
    assert measured - fs.sector_mean(40, 85) > 5
    assert measured - fs.sector_mean(-85, -60) > 5
    # the transposed volume (x and z swapped) has its wedge around kx instead: not symmetric
    swapped = figures.fourier_xz_slice(np.ascontiguousarray(vol.transpose(2, 1, 0)), taper=0.0)
    assert swapped.sector_mean(-20, 20) < swapped.sector_mean(70, 90) - 3


def test_fourier_slice_central_crop_and_validation():
    vol = np.random.default_rng(3).standard_normal((20, 50, 300)).astype(np.float32)
    fs = figures.fourier_xz_slice(vol, max_size=256, n_rows=8)
    assert fs.log_amplitude.shape == (20, 256) and fs.crop == (20, 8, 256)
    assert np.all(np.isfinite(fs.log_amplitude))
    assert fs.kx[0] == -0.5 and fs.kx[-1] < 0.5
    assert figures.central_crop((20, 50, 300), 256) == (slice(0, 20), slice(0, 50), slice(22, 278))
    with pytest.raises(ValueError, match="taper"):
        figures.fourier_xz_slice(vol, taper=0.7)
    with pytest.raises(ValueError, match="n_rows"):
        figures.fourier_xz_slice(vol, n_rows=0)


def test_figures_render_to_images_and_png(tmp_path):
    vol = _wedged_noise((24, 32, 40), -60, 60).astype(np.float32)
    fig = figures.orthoslice_figure([("raw", vol), ("corrected", vol * 2)], 10.0)
    image = figures.figure_to_array(fig)
    assert image.ndim == 3 and image.shape[2] == 4 and image.dtype == np.uint8
    assert image.shape[1] > image.shape[0]                 # two columns side by side
    assert image[..., :3].min() < 50 and image[..., :3].max() > 200   # dark and light pixels
    png = figures.save_figure(fig, tmp_path / "sub" / "ortho.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fs = figures.fourier_xz_slice(vol)
    figures.save_figure(figures.fourier_figure([("raw", fs), ("corrected", fs)], 10.0,
                                               tilt_range_deg=(-60, 60)), tmp_path / "f.png")
    freq = np.linspace(0, 0.5, 20)
    curve = figures.FSCCurve("even vs odd", freq, np.cos(freq * np.pi), resolution_a=23.0)
    figures.save_figure(figures.fsc_figure([curve], 10.0), tmp_path / "fsc.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "fsc.png", "sub"]
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["ortho.png"]   # no temporaries
    with pytest.raises(ValueError, match="differ in shape"):
        figures.orthoslice_figure([("a", vol), ("b", vol[:, :, :20])], 10.0)
