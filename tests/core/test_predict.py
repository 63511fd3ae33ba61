"""Prediction: identity and scale restoration, missing-wedge input filter, streamed z planes
against an independent per-tile reference, file to file streaming, the STAR workflow, and
memory that does not grow with the number of z planes."""
import os
import tracemalloc

import numpy as np
import pytest
import torch

from isonet2core.config import Microscope, PredictConfig, TrainConfig, to_dict
from isonet2core.imaging import fsc_weighting, normalize
from isonet2core.io import mrcio, output_names, star
from isonet2core.io.model_file import ModelFile
from isonet2core.nets.registry import build
from isonet2core.nets.unet import UNet3D
from isonet2core.steps import inference, map_streaming, predict, tiling

SCOPE = Microscope(pixel_size_a=10.0, defocus_a=20000.0, tilt_min_deg=-50.0, tilt_max_deg=40.0)


def _smooth_volume(shape, seed, mean=7.0, std=3.0):
    rng = np.random.default_rng(seed)
    v = np.fft.irfftn(np.fft.rfftn(rng.normal(size=shape)) * 1.0, s=shape)
    return (mean + std * v / v.std()).astype(np.float32)


def test_identity_model_returns_the_input_in_its_scale():
    vol = _smooth_volume((21, 40, 35), 0)
    model = build("plain-unet-small")  # fresh network: zero head, i.e. the identity
    out = inference.predict_volume(model, vol, cube_size=16, microscope=SCOPE,
                                 config=PredictConfig(apply_mw_x1=False, batch_size=3))
    assert out.shape == vol.shape and out.dtype == np.float32
    np.testing.assert_allclose(out, vol, atol=1e-4 * vol.std())


def test_network_sees_normalised_tiles_and_output_is_rescaled():
    """A model that doubles its input: out = 2 (v - m)/s * s + m = 2 v - m."""
    class Double(torch.nn.Module):
        def forward(self, x):
            assert abs(float(x.mean())) < 1.5 and 0.2 < float(x.std()) < 3  # normalised input
            return 2 * x
    vol = _smooth_volume((24, 24, 24), 1, mean=100.0, std=5.0)
    out = inference.predict_volume(Double(), vol, cube_size=16, microscope=SCOPE,
                                 config=PredictConfig(apply_mw_x1=False))
    from isonet2core.imaging.normalize import normalization_stats
    m, _ = normalization_stats(vol)
    np.testing.assert_allclose(out, 2 * vol - m, atol=1e-3)


class _FitsFew(torch.nn.Module):
    """Doubles its input, but "runs out of memory" on calls of more than ``fits`` tiles."""

    def __init__(self, fits):
        super().__init__()
        self.fits, self.calls = fits, []

    def forward(self, x):
        self.calls.append(len(x))
        if len(x) > self.fits:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return 2 * x


def test_a_device_out_of_memory_halves_the_tiles_per_call_and_predicts_the_same(caplog):
    vol = _smooth_volume((24, 40, 40), 4, mean=3.0, std=2.0)
    cfg = PredictConfig(apply_mw_x1=False, batch_size=8)
    expected = inference.predict_volume(_FitsFew(8), vol, cube_size=16, microscope=SCOPE, config=cfg)
    small = _FitsFew(3)
    with caplog.at_level("WARNING"):
        out = inference.predict_volume(small, vol, cube_size=16, microscope=SCOPE, config=cfg, name="v.mrc")
    np.testing.assert_array_equal(out, expected)
    assert small.calls[:3] == [8, 4, 2]               # halved until it fits ...
    assert max(small.calls[3:]) == 2                  # ... and kept for the rest of the map
    assert "v.mrc: the device ran out of memory with 8 tiles per call; going on with 4" in caplog.text
    with pytest.raises(RuntimeError, match=r"v.mrc: the device ran out of memory on one tile of \(16, 16, 16\) voxels"):
        inference.predict_volume(_FitsFew(0), vol, cube_size=16, microscope=SCOPE, config=cfg, name="v.mrc")


def test_apply_mw_x1_removes_the_missing_wedge_from_inputs():
    from isonet2core.imaging.wedge import wedge_mask
    vol = _smooth_volume((32, 32, 32), 2, mean=0.0, std=1.0)
    model = build("plain-unet-small")
    out = inference.predict_volume(model, vol, cube_size=32, microscope=SCOPE,
                                 config=PredictConfig(apply_mw_x1=True, padding_factor=1.0))
    missing = wedge_mask(vol.shape, SCOPE.tilt_min_deg, SCOPE.tilt_max_deg).numpy() == 0
    power_in = np.abs(np.fft.fftn(vol)) ** 2
    power_out = np.abs(np.fft.fftn(out - out.mean())) ** 2
    assert power_out[missing].sum() < 1e-8 * power_in[missing].sum()
    measured = ~missing
    measured[0, 0, 0] = False
    np.testing.assert_allclose(power_out[measured].sum(), power_in[measured].sum(), rtol=1e-3)


class _Conv(torch.nn.Module):
    """A fixed 3x3x3 convolution with zero padding: its tile outputs depend on where the tile
    edges are, so only the exact tiling, blending and scaling reproduce the reference."""

    def __init__(self, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.conv = torch.nn.Conv3d(1, 1, 3, padding=1)
        with torch.no_grad():
            self.conv.weight.copy_(0.2 * torch.randn(self.conv.weight.shape, generator=g))
            self.conv.bias.fill_(0.1)

    def forward(self, x):
        return self.conv(x)


def _per_tile_reference(net, vol, cube, padding_factor):
    """Independent of tiling's reading and blending: the whole normalised volume mirror-padded
    with np.pad, every tile of the grid run alone, weighted by the 3-D Hann window and summed,
    divided by the summed windows, rescaled; float64."""
    mean, std = normalize.normalization_stats(vol)
    grid = tiling.TileGrid.for_volume(vol.shape, cube, padding_factor)
    pad = [(-starts[0], max(starts[-1] + cube - n, 0)) for starts, n in zip(grid.starts, vol.shape)]
    assert all(max(p) < n for p, n in zip(pad, vol.shape))   # one reflection: np.pad's is exact
    padded = np.pad((vol.astype(np.float64) - mean) / std, pad, mode="reflect")
    w = np.sin(np.pi * (np.arange(cube) + 0.5) / cube) ** 2
    window = w[:, None, None] * w[None, :, None] * w[None, None, :]
    total, weights = np.zeros(padded.shape), np.zeros(padded.shape)
    for start in grid.positions():
        at = tuple(slice(s + p[0], s + p[0] + cube) for s, p in zip(start, pad))
        with torch.no_grad():
            out = net(torch.from_numpy(padded[at][None, None]).float())[0, 0].double().numpy()
        total[at] += out * window
        weights[at] += window
    inner = tuple(slice(p[0], p[0] + n) for p, n in zip(pad, vol.shape))
    return total[inner] / weights[inner] * std + mean


@pytest.mark.parametrize("shape", [(23, 37, 29), (11, 40, 17)])
def test_streamed_planes_match_an_independent_per_tile_reference(shape):
    vol = _smooth_volume(shape, 3, mean=50.0, std=4.0)
    # float32 like the reference (CPUs with native bfloat16 would otherwise predict in bfloat16)
    cfg = PredictConfig(apply_mw_x1=False, batch_size=3, padding_factor=1.5, mixed_precision=False)
    nets = [_Conv(1), _Conv(2)]
    reference = [_per_tile_reference(n, vol, 16, 1.5) for n in nets]
    out = inference.predict_volume(nets[0], vol, cube_size=16, microscope=SCOPE, config=cfg)
    assert out.dtype == np.float32 and out.shape == shape
    np.testing.assert_allclose(out, reference[0], atol=2e-5 * 50, rtol=0)
    # two networks on one map (split halves): their average, tile by tile, as blocks of planes
    blocks = list(inference.predict_blocks(nets, vol, cube_size=16, microscope=SCOPE, config=cfg))
    assert [z0 for z0, _, _ in blocks] == list(np.cumsum([0] + [len(b) for _, _, b in blocks[:-1]]))
    assert all(len(b) <= 16 and y0 == 0 and b.shape[1:] == shape[1:] for _, y0, b in blocks)
    np.testing.assert_allclose(np.concatenate([b for _, _, b in blocks]), (reference[0] + reference[1]) / 2,
                               atol=2e-5 * 50, rtol=0)
    # in bands of rows (as for planes too large for the budget): the same voxels
    grid = inference.tile_grid(shape, 16, cfg)
    bands = tiling.plan_bands(grid, tiling.band_bytes(grid, 12))
    assert len(bands) > 1
    banded = np.full(shape, np.nan, np.float32)
    for z0, y0, block in inference.predict_blocks(nets, vol, cube_size=16, microscope=SCOPE, config=cfg,
                                                  bands=bands):
        assert np.isnan(banded[z0:z0 + len(block), y0:y0 + block.shape[1]]).all()
        banded[z0:z0 + len(block), y0:y0 + block.shape[1]] = block
    np.testing.assert_allclose(banded, np.concatenate([b for _, _, b in blocks]), atol=1e-6 * 50, rtol=0)
    with pytest.raises(ValueError, match="do not cover its"):
        next(inference.predict_blocks(nets, vol, cube_size=16, microscope=SCOPE, config=cfg,
                                      bands=[(0, 10), (11, shape[1])]))


def test_predict_runs_in_bfloat16_by_default_where_the_cpu_has_it(monkeypatch):
    """With native bfloat16 (forced here, so any CPU runs the check) predict's default autocasts
    the network: the map differs from the float32 one, by bfloat16's rounding and no more."""
    from isonet2core import device
    vol = _smooth_volume((23, 37, 29), 3, mean=50.0, std=4.0)
    fp32 = inference.predict_volume(_Conv(1), vol, cube_size=16, microscope=SCOPE,
                                  config=PredictConfig(apply_mw_x1=False, mixed_precision=False))
    monkeypatch.setattr(device, "cpu_has_native_bf16", lambda: True)
    bf16 = inference.predict_volume(_Conv(1), vol, cube_size=16, microscope=SCOPE,
                                  config=PredictConfig(apply_mw_x1=False))
    assert bf16.dtype == np.float32
    err = np.abs(bf16 - fp32).max() / fp32.std()
    assert 1e-4 < err < 0.05
    assert np.corrcoef(bf16.ravel(), fp32.ravel())[0, 1] > 0.999


def test_predict_file_streams_into_an_mrc_file(tmp_path):
    vol = _smooth_volume((37, 24, 21), 4)
    source = mrcio.write_mrc(tmp_path / "in.mrc", vol, 7.5)
    cfg = PredictConfig(apply_mw_x1=True, batch_size=4)
    net = _Conv(3)
    target = map_streaming.predict_file([net], source, tmp_path / "out" / "pred.mrc", cube_size=16,
                                  config=cfg, microscope=SCOPE)
    data, voxel = mrcio.read_mrc(target)
    assert voxel == 7.5
    expected = inference.predict_volume(net, vol, cube_size=16, config=cfg, microscope=SCOPE)
    np.testing.assert_array_equal(data, expected)
    with pytest.raises(ValueError, match="in.mrc"):   # never over its input
        map_streaming.predict_file([net], source, source, cube_size=16, config=cfg, microscope=SCOPE)

    class FailsLater(torch.nn.Module):
        calls = 0

        def forward(self, x):
            FailsLater.calls += 1
            if FailsLater.calls == 3:
                raise RuntimeError("out of memory")
            return x

    with pytest.raises(RuntimeError, match="out of memory"):
        map_streaming.predict_file([FailsLater()], source, tmp_path / "out" / "failed.mrc", cube_size=16,
                             config=PredictConfig(apply_mw_x1=False, batch_size=1), microscope=SCOPE)
    assert os.listdir(tmp_path / "out") == ["pred.mrc"]       # no partial file, no temporary
    np.testing.assert_array_equal(mrcio.read_mrc(source)[0], vol)


def test_one_phaseflip_rule_for_training_previews_and_predict():
    """config.flips_input is the rule; the training cubes' state and a checkpoint's predict ask it."""
    from isonet2core.config import CTF_MODES, TrainConfig, flips_input
    from isonet2core.training.targets import cubes_are_flipped
    for mode in CTF_MODES:
        for do in (True, False):
            for flipped in (True, False):
                expected = mode is not None and not flipped and (mode == "phase_only" or do)
                assert flips_input(mode, do, flipped) is expected, (mode, do, flipped)
                cfg = TrainConfig(ctf_mode=mode, do_phaseflip_input=do, is_ctf_flipped=flipped)
                assert _model(ctf_mode=mode, do_phaseflip_input=do).flips_input(flipped) is expected
                assert cubes_are_flipped(cfg) is (mode is not None and (flipped or expected))


def _model(**config) -> ModelFile:
    return ModelFile(model_state={}, arch="plain-unet-small", cube_size=16, method="isonet2-n2n", config=config)


def test_phaseflip_rule():
    """The model file's training settings decide (a program file without do_phaseflip_input: True)."""
    assert _model(ctf_mode="network", do_phaseflip_input=True).flips_input(False)
    assert not _model(ctf_mode="network", do_phaseflip_input=True).flips_input(True)
    assert not _model(ctf_mode="network", do_phaseflip_input=False).flips_input(False)
    assert _model(ctf_mode="phase_only").flips_input(False)
    assert not _model(ctf_mode=None, do_phaseflip_input=True).flips_input(False)
    assert not _model().flips_input(False)


def _write_dataset(tmp_path, halves=True, method="isonet2-n2n", ctf_mode=None, model2=False):
    records = []
    for i, shape in enumerate([(20, 36, 30), (16, 18, 17)], start=1):
        rec = {star.TOMO_NAME: f"tomo_{i:03d}", star.PIXEL_SIZE: 10.0, star.DEFOCUS: 20000.0,
               star.TILT_MIN: -60.0, star.TILT_MAX: 55.0}
        full = mrcio.write_mrc(tmp_path / "full" / f"tomo_{i:03d}.mrc", _smooth_volume(shape, i), 10.0)
        rec[star.TOMO_FULL] = str(full)
        if halves:
            rec[star.TOMO_HALF1] = str(mrcio.write_mrc(tmp_path / "even" / f"tomo_{i:03d}.mrc",
                                                       _smooth_volume(shape, 10 + i), 10.0))
            rec[star.TOMO_HALF2] = str(mrcio.write_mrc(tmp_path / "odd" / f"tomo_{i:03d}.mrc",
                                                       _smooth_volume(shape, 20 + i), 10.0))
        records.append(rec)
    star_path = star.TomogramsTable.from_records(records).write(tmp_path / "tomograms.star")
    torch.manual_seed(0)
    net = build("plain-unet-small")
    torch.nn.init.normal_(net.head.weight, std=0.01)
    state = dict(model_state=net.state_dict(), arch="plain-unet-small", cube_size=16, method=method,
                 config=to_dict(TrainConfig(method=method, arch="plain-unet-small", cube_size=16, ctf_mode=ctf_mode)),
                 tomograms={"tomo_001": to_dict(SCOPE)})
    if model2:
        state["model2_state"] = build("plain-unet-small").state_dict()
    model_path = ModelFile(**state).save(output_names.model_path(tmp_path / "run", method, "plain-unet-small", 16))
    return star_path, model_path, net


def test_predict_tomograms_n2n_halves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    star_path, model_path, net = _write_dataset(tmp_path, ctf_mode="network")
    cfg = PredictConfig(batch_size=8, padding_factor=1.0, fsc_weighting=False, halves_input="halves")
    written = predict.predict_tomograms(star_path, model_path, None, "out", cfg, tomo_idx=[1])
    assert [p.name for p in written] == ["tomo_001_corrected_half1.mrc", "tomo_001_corrected_half2.mrc",
                                         "tomo_001_corrected.mrc"]
    table = star.TomogramsTable.read(star_path)
    assert table.value(0, star.CORRECTED) == "out/tomo_001_corrected.mrc"
    assert table.value(0, star.CORRECTED_HALF2) == "out/tomo_001_corrected_half2.mrc"
    assert table.value(1, star.CORRECTED) is None  # not selected
    full, voxel = mrcio.read_mrc(table.path(0, star.CORRECTED))
    h1, _ = mrcio.read_mrc(table.path(0, star.CORRECTED_HALF1))
    h2, _ = mrcio.read_mrc(table.path(0, star.CORRECTED_HALF2))
    assert full.shape == (20, 36, 30) and voxel == pytest.approx(10.0)
    np.testing.assert_array_equal(full, (h1 + h2) * np.float32(0.5))   # as computed in memory
    # the halves are the per-half predictions (same model, phase flip from ctf_mode network)
    scope = star.TomogramsTable.read(star_path).microscope(0)
    for half, name in ((h1, "even"), (h2, "odd")):
        data, _ = mrcio.read_mrc(tmp_path / name / "tomo_001.mrc")
        expected = inference.predict_volume(net, data, cube_size=16, config=cfg, phaseflip=True,
                                          microscope=scope)
        np.testing.assert_array_equal(half, expected)
    assert not np.allclose(h1, h2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)


def test_predict_n2n_main_map_from_the_halves_average(tmp_path, monkeypatch):
    """halves_input average: the halves are the per-half predictions as before, the main map is
    the prediction of (even + odd) / 2, FSC-weighted by the half predictions' shell weights;
    the unweighted temporary is gone afterwards."""
    monkeypatch.chdir(tmp_path)
    star_path, model_path, net = _write_dataset(tmp_path, ctf_mode="network")
    scope = star.TomogramsTable.read(star_path).microscope(0)
    even, _ = mrcio.read_mrc(tmp_path / "even" / "tomo_001.mrc")
    odd, _ = mrcio.read_mrc(tmp_path / "odd" / "tomo_001.mrc")
    mean = (even + odd) * np.float32(0.5)
    plain = PredictConfig(batch_size=8, padding_factor=1.0, fsc_weighting=False, halves_input="average")
    expected = inference.predict_volume(net, mean, cube_size=16, config=plain, phaseflip=True, microscope=scope)
    written = predict.predict_tomograms(star_path, model_path, None, "out", plain, tomo_idx=[1])
    assert [p.name for p in written] == ["tomo_001_corrected_half1.mrc", "tomo_001_corrected_half2.mrc",
                                         "tomo_001_corrected.mrc"]
    main, _ = mrcio.read_mrc(tmp_path / "out" / "tomo_001_corrected.mrc")
    h1, _ = mrcio.read_mrc(tmp_path / "out" / "tomo_001_corrected_half1.mrc")
    h2, _ = mrcio.read_mrc(tmp_path / "out" / "tomo_001_corrected_half2.mrc")
    np.testing.assert_allclose(main, expected, rtol=0, atol=1e-5 * float(np.abs(expected).max()))
    np.testing.assert_array_equal(h1, inference.predict_volume(net, even, cube_size=16, config=plain,
                                                               phaseflip=True, microscope=scope))
    assert np.abs(main - expected).max() * 10 < np.abs(main - (h1 + h2) / 2).max()   # not the halves' mean

    weighted = predict.predict_tomograms(star_path, model_path, None, "outw",
                                         PredictConfig(batch_size=8, padding_factor=1.0,
                                                       halves_input="average"), tomo_idx=[1])
    got, _ = mrcio.read_mrc(weighted[-1])
    freq, weights = fsc_weighting.half_map_weights(h1, h2, crop=fsc_weighting.FSC_CROP)
    assert weights.min() < 0.99          # the weighting does something here
    from isonet2core.imaging import fourier
    filt = fsc_weighting.radial_filter(main.shape, freq, weights)
    want = fourier.apply_fourier_filter(torch.from_numpy(main), filt).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * float(np.abs(want).max()))
    assert sorted(p.name for p in (tmp_path / "outw").iterdir()) == sorted(p.name for p in weighted)


def test_auto_halves_input_averages_the_halves_for_refine_models_only(tmp_path, monkeypatch):
    """halves_input auto (default): refine models predict the halves' average, denoise models
    average their half predictions."""
    monkeypatch.chdir(tmp_path)
    assert PredictConfig().halves_input == "auto"
    assert predict.average_halves(PredictConfig(), denoise=False)
    assert not predict.average_halves(PredictConfig(), denoise=True)
    assert predict.average_halves(PredictConfig(halves_input="average"), denoise=True)
    assert not predict.average_halves(PredictConfig(halves_input="halves"), denoise=False)
    for method, mode in (("isonet2-n2n", "average"), ("n2n", "halves")):
        star_path, model_path, _ = _write_dataset(tmp_path / method, method=method)
        maps = {}
        for choice in ("auto", mode):
            out = predict.predict_tomograms(star_path, model_path, None, tmp_path / method / choice,
                                            PredictConfig(batch_size=8, halves_input=choice), tomo_idx=[1])
            maps[choice] = mrcio.read_mrc(out[-1])[0]
        np.testing.assert_array_equal(maps["auto"], maps[mode])


def test_mean_of_maps_reads_the_voxelwise_mean_and_names_mismatched_maps(tmp_path):
    a = mrcio.write_mrc(tmp_path / "a.mrc", _smooth_volume((6, 8, 5), 1), 10.0)
    b = mrcio.write_mrc(tmp_path / "b.mrc", _smooth_volume((6, 8, 5), 2), 10.0)
    mean = map_streaming.MeanOfMaps([a, b])
    va, vb = mrcio.read_mrc(a)[0], mrcio.read_mrc(b)[0]
    assert mean.shape == (6, 8, 5) and len(mean) == 6
    np.testing.assert_allclose(mean[1:4], (va[1:4] + vb[1:4]) / 2, rtol=1e-6)
    np.testing.assert_allclose(mean[2:5, 3:7], (va[2:5, 3:7] + vb[2:5, 3:7]) / 2, rtol=1e-6)
    c = mrcio.write_mrc(tmp_path / "c.mrc", _smooth_volume((6, 8, 4), 3), 10.0)
    with pytest.raises(ValueError, match=r"c\.mrc \(6, 8, 4\)"):
        map_streaming.MeanOfMaps([a, c])
    with pytest.raises(ValueError, match="halves_input must be one of"):
        PredictConfig(halves_input="full").validate()


def test_predict_single_map_denoise_and_split_halves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # single-map refine model: uses the full map, writes no halves
    star_path, model_path, _ = _write_dataset(tmp_path, halves=False, method="isonet2")
    predict.predict_tomograms(star_path, model_path, output_dir=tmp_path / "o1",
                              config=PredictConfig(apply_mw_x1=False))
    table = star.TomogramsTable.read(star_path)
    for row, shape in ((0, (20, 36, 30)), (1, (16, 18, 17))):
        out, voxel = mrcio.read_mrc(table.path(row, star.CORRECTED))
        assert out.shape == shape and voxel == pytest.approx(10.0)
        assert table.value(row, star.CORRECTED_HALF1) is None
    # a rerun replaces the outputs and leaves no temporary files
    predict.predict_tomograms(star_path, model_path, output_dir=tmp_path / "o1")
    assert sorted(p.name for p in (tmp_path / "o1").iterdir()) == ["tomo_001_corrected.mrc",
                                                                    "tomo_002_corrected.mrc"]



def test_split_halves_on_a_single_map_average_both_networks(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    star_path, model_path, net = _write_dataset(tmp_path, halves=False, method="isonet2", model2=True)
    net2 = ModelFile.load(model_path).network(second=True)
    cfg = PredictConfig(apply_mw_x1=False, batch_size=3)
    written = predict.predict_tomograms(star_path, model_path, output_dir="o", config=cfg, tomo_idx=[1])
    assert [p.name for p in written] == ["tomo_001_corrected.mrc"]
    out, _ = mrcio.read_mrc(written[0])
    vol, _ = mrcio.read_mrc(tmp_path / "full" / "tomo_001.mrc")
    one, two = (inference.predict_volume(n, vol, cube_size=16, config=cfg, microscope=SCOPE) for n in (net, net2))
    tol = 1e-5 * vol.std()
    np.testing.assert_allclose(out, (one + two) / 2, atol=tol)
    assert np.abs(one - two).max() > 30 * tol   # the networks differ: either alone would fail


def test_predict_denoise_model_with_model2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    star_path, model_path, net = _write_dataset(tmp_path, method="n2n", model2=True)
    predict.predict_tomograms(star_path, model_path, output_dir="den", tomo_idx=[2])
    table = star.TomogramsTable.read(star_path)
    assert table.value(1, star.DENOISED) == "den/tomo_002_denoised.mrc"
    assert not table.has_column(star.CORRECTED)
    # model2 (identity here) predicted the odd half
    odd, _ = mrcio.read_mrc(tmp_path / "odd" / "tomo_002.mrc")
    h2, _ = mrcio.read_mrc(table.path(1, star.DENOISED_HALF2))
    np.testing.assert_allclose(h2, odd, atol=1e-4 * odd.std())


def test_validation_before_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    star_path, model_path, _ = _write_dataset(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.pt"):
        predict.predict_tomograms(star_path, junk, output_dir="o")
    (tmp_path / "odd" / "tomo_002.mrc").unlink()
    with pytest.raises(FileNotFoundError, match="tomo_002.mrc"):
        predict.predict_tomograms(star_path, model_path, output_dir="o")
    assert not (tmp_path / "o").exists()  # nothing written before validation passed
    with pytest.raises(ValueError, match="rlnIndex 9"):
        predict.predict_tomograms(star_path, model_path, output_dir="o", tomo_idx=[9])
    other = ModelFile(model_state=UNet3D((16, 32, 64, 128, 256)).state_dict(), arch="plain-unet-small",
                      cube_size=32, method="isonet2-n2n").save(tmp_path / "c32.pt")
    with pytest.raises(ValueError, match="cube_size 32.*cube_size 16"):
        predict.predict_tomograms(star_path, model_path, other, output_dir="o", tomo_idx=[1])
    # an output named like an input (a tomogram whose map is full/tomo_001_corrected.mrc,
    # predicted into full/) is refused before anything is computed
    table = star.TomogramsTable.read(star_path)
    table.set_value(0, star.TOMO_FULL, str(tmp_path / "full" / "tomo_001_corrected.mrc"))
    table.set_value(0, star.TOMO_HALF1, None)
    table.set_value(0, star.TOMO_HALF2, None)
    table.write(star_path)
    mrcio.write_mrc(tmp_path / "full" / "tomo_001_corrected.mrc", _smooth_volume((16, 16, 16), 5), 10.0)
    with pytest.raises(ValueError, match="refusing to write .*tomo_001_corrected.mrc: it is the input"):
        predict.predict_tomograms(star_path, model_path, output_dir="full", tomo_idx=[1])


def test_command_line(tmp_path, monkeypatch, capsys):
    from isonet2core.cli.main import main
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()  # the command sets torch's threads from --ncpus
    try:
        _run_command_lines(tmp_path, capsys, main)
    finally:
        torch.set_num_threads(threads)


def _run_command_lines(tmp_path, capsys, main):
    star_path, model_path, _ = _write_dataset(tmp_path, halves=False, method="isonet2")
    # IsoNet2 spelling: positional STAR and MODEL, booleans as values
    assert main(["predict", str(star_path), str(model_path), "--output_dir", "out",
                 "--apply_mw_x1", "False", "--padding_factor", "2", "--batch_size", "2",
                 "--tomo_idx", "2", "--device", "cpu", "--ncpus", "1"]) == 0
    assert (tmp_path / "out" / "tomo_002_corrected.mrc").is_file()
    assert star.TomogramsTable.read(star_path).value(1, star.CORRECTED) == "out/tomo_002_corrected.mrc"
    # --model twin, dashed spelling
    assert main(["predict", "--star_file", str(star_path), "--model", str(model_path),
                 "--output-dir", "out2", "--tomo-idx", "1", "--device", "cpu"]) == 0
    assert (tmp_path / "out2" / "tomo_001_corrected.mrc").is_file()
    capsys.readouterr()
    assert main(["predict", str(star_path), str(tmp_path / "nope.pt"), "--device", "cpu"]) == 2
    assert "nope.pt" in capsys.readouterr().err
    assert main(["predict", str(star_path), "--device", "cpu"]) == 2
    assert "model file is required" in capsys.readouterr().err


def _traced_peak_of_predict(tmp_path, n_z, fsc_weighting=False, n_y=64):
    """Peak traced (numpy + Python) memory of ``predict_tomograms`` on one (n_z, n_y, 64)
    tomogram with even/odd halves, written to and read from files."""
    root = tmp_path / f"z{n_z}y{n_y}"
    shape = (n_z, n_y, 64)
    rec = {star.TOMO_NAME: "t", star.PIXEL_SIZE: 10.0, star.DEFOCUS: 20000.0,
           star.TILT_MIN: -60.0, star.TILT_MAX: 55.0,
           star.TOMO_HALF1: str(mrcio.write_mrc(root / "even.mrc", _smooth_volume(shape, 1), 10.0)),
           star.TOMO_HALF2: str(mrcio.write_mrc(root / "odd.mrc", _smooth_volume(shape, 2), 10.0))}
    star_path = star.TomogramsTable.from_records([rec]).write(root / "tomograms.star")
    model_path = ModelFile(model_state=build("plain-unet-small").state_dict(), arch="plain-unet-small",
                           cube_size=16, method="isonet2-n2n").save(root / "model.pt")
    cfg = PredictConfig(batch_size=4, padding_factor=1.0, fsc_weighting=fsc_weighting)
    tracemalloc.start()
    try:
        written = predict.predict_tomograms(star_path, model_path, output_dir=root / "out", config=cfg)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(written) == 3 and mrcio.read_header(written[-1]).shape == shape
    return peak


@pytest.mark.parametrize("weighted", [False, True], ids=["plain-average", "fsc-weighted"])
def test_memory_does_not_grow_with_the_number_of_z_planes(tmp_path, monkeypatch, weighted):
    """From files, the peak is a few slabs of cube planes plus a fixed part: a tomogram 4x
    deeper needs no more memory. (Whole output arrays, as before streaming, made it ~4x.)
    The input check and the normalisation read chunks of a fixed number of voxels (4 Mi, far
    above these tomograms): set to 8 planes here, so that they are bounded at this size too;
    likewise the FSC weighting's central block (160^3), context (24 voxels), tile (64) and
    one-FFT size (4 Mi voxels): 16, 8, 16 and 16 planes."""
    monkeypatch.setattr(mrcio, "_CHECK_CHUNK_VOXELS", 8 * 64 * 64)
    monkeypatch.setattr(normalize, "_CHUNK_VOXELS", 8 * 64 * 64)
    monkeypatch.setattr(fsc_weighting, "FSC_CROP", 16)
    monkeypatch.setattr(fsc_weighting, "MARGIN_PLANES", 8)
    monkeypatch.setattr(fsc_weighting, "TILE", 16)
    monkeypatch.setattr(fsc_weighting, "WHOLE_VOXELS", 16 * 64 * 64)
    # weighted: both depths past the one-FFT size (16 planes), as deep tomograms are
    shallow = _traced_peak_of_predict(tmp_path, 16 * (4 if weighted else 2), weighted)
    deep = _traced_peak_of_predict(tmp_path, 16 * (16 if weighted else 8), weighted)
    plane = 64 * 64 * 4
    assert deep < 1.5 * shallow, (shallow / plane, deep / plane)
    assert deep < 16 * (16 if weighted else 8) * plane        # less than one full-size float32 map


def test_memory_does_not_grow_with_the_size_of_the_planes(tmp_path, monkeypatch):
    """Planes too large for the budget are predicted in y bands, and the halves averaged in
    blocks of a fixed number of voxels: a tomogram with 4x the rows needs no more memory (whole
    planes: ~4x). BAND_BYTES and the fixed-size reads are set to this small size (as 4 GiB and
    4 Mi voxels are to a 4096x4096 plane)."""
    monkeypatch.setattr(mrcio, "_CHECK_CHUNK_VOXELS", 8 * 64 * 64)
    monkeypatch.setattr(normalize, "_CHUNK_VOXELS", 8 * 64 * 64)
    monkeypatch.setattr(map_streaming, "AVERAGE_VOXELS", 8 * 64 * 64)
    grid = tiling.TileGrid.for_volume((16, 64, 64), 16, 1.0)
    monkeypatch.setattr(tiling, "BAND_BYTES", tiling.band_bytes(grid, 64))
    narrow = _traced_peak_of_predict(tmp_path, 16, n_y=64)
    wide = _traced_peak_of_predict(tmp_path, 16, n_y=256)
    plane = 64 * 64 * 4
    assert wide < 1.5 * narrow, (narrow / plane, wide / plane)


@pytest.mark.parametrize("shape,blocks", [((3, 30, 7), 9), ((11, 5, 4), 3), ((40, 2, 2), 3)])
def test_average_blocks_cover_the_volume_within_the_voxel_budget(monkeypatch, shape, blocks):
    monkeypatch.setattr(map_streaming, "AVERAGE_VOXELS", 100)
    seen = np.zeros(shape, int)
    got = list(map_streaming.average_blocks(shape, 16))
    for z0, z1, y0, y1 in got:
        seen[z0:z1, y0:y1] += 1
        assert z1 - z0 <= 16 and (z1 - z0) * (y1 - y0) * shape[2] <= 100
    assert (seen == 1).all() and len(got) == blocks


def test_predict_in_bands_within_memory_gb_or_refused_before_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    star_path, model_path, _ = _write_dataset(tmp_path)
    cfg = PredictConfig(batch_size=8, padding_factor=1.5)
    whole = predict.predict_tomograms(star_path, model_path, None, "whole", cfg, tomo_idx=[1])
    grid = inference.tile_grid((20, 36, 30), 16, cfg)
    monkeypatch.setattr(tiling, "BAND_BYTES", tiling.band_bytes(grid, 12))
    assert len(tiling.plan_bands(grid)) > 1
    banded = predict.predict_tomograms(star_path, model_path, None, "banded", cfg, tomo_idx=[1])
    for a, b in zip(whole, banded):
        x, y = mrcio.read_mrc(a)[0], mrcio.read_mrc(b)[0]
        np.testing.assert_allclose(y, x, atol=1e-5 * x.std(), rtol=0)
    with pytest.raises(ValueError, match=r"tomogram tomo_001 .*even/tomo_001.mrc.*bands of 8 rows needs at "
                                         r"least .* memory budget .*memory_gb 1e-06.* leaves nothing"):
        predict.predict_tomograms(star_path, model_path, None, "refused",
                                  PredictConfig(memory_gb=1e-6), tomo_idx=[1])
    assert not (tmp_path / "refused").exists() or not any((tmp_path / "refused").iterdir())


def test_output_prefix_and_save_slices_as_the_official_predict(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    star_path, model_path, _ = _write_dataset(tmp_path, halves=False, method="isonet2")
    cfg = PredictConfig(batch_size=8, padding_factor=1.0, output_prefix="epoch10",
                        save_slices=True)
    written = predict.predict_tomograms(star_path, model_path, None, "out", cfg, tomo_idx=[1])
    assert [p.name for p in written] == ["epoch10_tomo_001_corrected.mrc",
                                         "epoch10_tomo_001_corrected_slices.png",
                                         "epoch10_tomo_001_corrected_spectrum.png"]
    assert all(p.stat().st_size > 1000 for p in written)
    with open(written[1], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert star.TomogramsTable.read(star_path).value(0, star.CORRECTED) == \
        "out/epoch10_tomo_001_corrected.mrc"
    with pytest.raises(ValueError, match="not a path"):
        PredictConfig(output_prefix="a/b").validate()


def test_predict_writes_the_weighted_average_and_unweighted_halves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    star_path, model_path, _ = _write_dataset(tmp_path)
    plain = predict.predict_tomograms(star_path, model_path, None, "plain",
                                      PredictConfig(fsc_weighting=False, halves_input="halves"), tomo_idx=[1])
    weighted = predict.predict_tomograms(star_path, model_path, None, "weighted",
                                         PredictConfig(halves_input="halves"), tomo_idx=[1])
    h = [mrcio.read_mrc(p)[0] for p in weighted[:2]]
    for p, q in zip(plain[:2], weighted[:2]):
        np.testing.assert_array_equal(mrcio.read_mrc(p)[0], mrcio.read_mrc(q)[0])
    freq, weights = fsc_weighting.half_map_weights(*h)
    expected = np.concatenate(list(fsc_weighting.weighted_average_planes(h, freq, weights, block_planes=16)))
    np.testing.assert_allclose(mrcio.read_mrc(weighted[2])[0], expected, atol=1e-5)
    assert not np.allclose(mrcio.read_mrc(weighted[2])[0], mrcio.read_mrc(plain[2])[0], atol=1e-3)
