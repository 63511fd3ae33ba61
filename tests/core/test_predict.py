"""Prediction: identity and scale restoration, missing-wedge input filter, the STAR workflow."""
import numpy as np
import pytest
import torch

from isonet2core import checkpoint, mrcio, predict, star
from isonet2core.config import Microscope, PredictConfig, TrainConfig, to_dict
from isonet2core.nets.unet import UNet3D, build_unet

SCOPE = Microscope(pixel_size_a=10.0, defocus_a=20000.0, tilt_min_deg=-50.0, tilt_max_deg=40.0)


def _smooth_volume(shape, seed, mean=7.0, std=3.0):
    rng = np.random.default_rng(seed)
    v = np.fft.irfftn(np.fft.rfftn(rng.normal(size=shape)) * 1.0, s=shape)
    return (mean + std * v / v.std()).astype(np.float32)


def test_identity_model_returns_the_input_in_its_scale():
    vol = _smooth_volume((21, 40, 35), 0)
    model = build_unet("unet-small")  # fresh network: zero head, i.e. the identity
    out = predict.predict_volume(model, vol, cube_size=16, microscope=SCOPE,
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
    out = predict.predict_volume(Double(), vol, cube_size=16, microscope=SCOPE,
                                 config=PredictConfig(apply_mw_x1=False))
    from isonet2core.normalize import normalization_stats
    m, _ = normalization_stats(vol)
    np.testing.assert_allclose(out, 2 * vol - m, atol=1e-3)


def test_apply_mw_x1_removes_the_missing_wedge_from_inputs():
    from isonet2core.wedge import wedge_mask
    vol = _smooth_volume((32, 32, 32), 2, mean=0.0, std=1.0)
    model = build_unet("unet-small")
    out = predict.predict_volume(model, vol, cube_size=32, microscope=SCOPE,
                                 config=PredictConfig(apply_mw_x1=True, padding_factor=1.0))
    missing = wedge_mask(vol.shape, SCOPE.tilt_min_deg, SCOPE.tilt_max_deg).numpy() == 0
    power_in = np.abs(np.fft.fftn(vol)) ** 2
    power_out = np.abs(np.fft.fftn(out - out.mean())) ** 2
    assert power_out[missing].sum() < 1e-8 * power_in[missing].sum()
    measured = ~missing
    measured[0, 0, 0] = False
    np.testing.assert_allclose(power_out[measured].sum(), power_in[measured].sum(), rtol=1e-3)


def test_phaseflip_rule():
    assert predict.input_needs_phaseflip({"ctf_mode": "network", "do_phaseflip_input": True}, False)
    assert not predict.input_needs_phaseflip({"ctf_mode": "network", "do_phaseflip_input": True}, True)
    assert not predict.input_needs_phaseflip({"ctf_mode": "network", "do_phaseflip_input": False}, False)
    assert predict.input_needs_phaseflip({"ctf_mode": "phase_only"}, False)
    assert not predict.input_needs_phaseflip({"ctf_mode": None, "do_phaseflip_input": True}, False)
    assert not predict.input_needs_phaseflip({}, False)


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
    net = build_unet("unet-small")
    torch.nn.init.normal_(net.head.weight, std=0.01)
    state = dict(model_state=net.state_dict(), arch="unet-small", cube_size=16, method=method,
                 config=to_dict(TrainConfig(method=method, arch="unet-small", cube_size=16, ctf_mode=ctf_mode)),
                 tomograms={"tomo_001": to_dict(SCOPE)})
    if model2:
        state["model2_state"] = build_unet("unet-small").state_dict()
    model_file = checkpoint.save_checkpoint(
        checkpoint.model_path(tmp_path / "run", method, "unet-small", 16), state)
    return star_path, model_file, net


def test_predict_tomograms_n2n_halves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    star_path, model_file, net = _write_dataset(tmp_path, ctf_mode="network")
    cfg = PredictConfig(batch_size=8, padding_factor=1.0)
    written = predict.predict_tomograms(star_path, model_file, None, "out", cfg, tomo_idx=[1])
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
    np.testing.assert_allclose(full, (h1 + h2) / 2, atol=1e-5)
    # the halves are the per-half predictions (same model, phase flip from ctf_mode network)
    even, _ = mrcio.read_mrc(tmp_path / "even" / "tomo_001.mrc")
    expected = predict.predict_volume(net, even, cube_size=16, config=cfg, phaseflip=True,
                                      microscope=star.TomogramsTable.read(star_path).microscope(0))
    np.testing.assert_allclose(h1, expected, atol=1e-4)
    assert not np.allclose(h1, h2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in written)


def test_predict_single_map_denoise_and_split_halves(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # single-map refine model: uses the full map, writes no halves
    star_path, model_file, _ = _write_dataset(tmp_path, halves=False, method="isonet2")
    predict.predict_tomograms(star_path, model_file, output_dir=tmp_path / "o1",
                              config=PredictConfig(apply_mw_x1=False))
    table = star.TomogramsTable.read(star_path)
    for row, shape in ((0, (20, 36, 30)), (1, (16, 18, 17))):
        out, voxel = mrcio.read_mrc(table.path(row, star.CORRECTED))
        assert out.shape == shape and voxel == pytest.approx(10.0)
        assert table.value(row, star.CORRECTED_HALF1) is None
    # a rerun replaces the outputs and leaves no temporary files
    predict.predict_tomograms(star_path, model_file, output_dir=tmp_path / "o1")
    assert sorted(p.name for p in (tmp_path / "o1").iterdir()) == ["tomo_001_corrected.mrc",
                                                                    "tomo_002_corrected.mrc"]


def test_predict_denoise_model_with_model2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    star_path, model_file, net = _write_dataset(tmp_path, method="n2n", model2=True)
    predict.predict_tomograms(star_path, model_file, output_dir="den", tomo_idx=[2])
    table = star.TomogramsTable.read(star_path)
    assert table.value(1, star.DENOISED) == "den/tomo_002_denoised.mrc"
    assert not table.has_column(star.CORRECTED)
    # model2 (identity here) predicted the odd half
    odd, _ = mrcio.read_mrc(tmp_path / "odd" / "tomo_002.mrc")
    h2, _ = mrcio.read_mrc(table.path(1, star.DENOISED_HALF2))
    np.testing.assert_allclose(h2, odd, atol=1e-4 * odd.std())


def test_validation_before_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    star_path, model_file, _ = _write_dataset(tmp_path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="junk.pt"):
        predict.predict_tomograms(star_path, junk, output_dir="o")
    (tmp_path / "odd" / "tomo_002.mrc").unlink()
    with pytest.raises(FileNotFoundError, match="tomo_002.mrc"):
        predict.predict_tomograms(star_path, model_file, output_dir="o")
    assert not (tmp_path / "o").exists()  # nothing written before validation passed
    with pytest.raises(ValueError, match="rlnIndex 9"):
        predict.predict_tomograms(star_path, model_file, output_dir="o", tomo_idx=[9])
    other = checkpoint.save_checkpoint(tmp_path / "c32.pt", dict(
        model_state=UNet3D((16, 32, 64, 128, 256)).state_dict(), arch="unet-small", cube_size=32,
        method="isonet2-n2n"))
    with pytest.raises(ValueError, match="cube_size 32.*cube_size 16"):
        predict.predict_tomograms(star_path, model_file, other, output_dir="o", tomo_idx=[1])
    # an output named like an input (a tomogram whose map is full/tomo_001_corrected.mrc,
    # predicted into full/) is refused before anything is computed
    table = star.TomogramsTable.read(star_path)
    table.set_value(0, star.TOMO_FULL, str(tmp_path / "full" / "tomo_001_corrected.mrc"))
    table.set_value(0, star.TOMO_HALF1, None)
    table.set_value(0, star.TOMO_HALF2, None)
    table.write(star_path)
    mrcio.write_mrc(tmp_path / "full" / "tomo_001_corrected.mrc", _smooth_volume((16, 16, 16), 5), 10.0)
    with pytest.raises(ValueError, match="overwrite an input"):
        predict.predict_tomograms(star_path, model_file, output_dir="full", tomo_idx=[1])


def test_command_line(tmp_path, monkeypatch, capsys):
    from isonet2core.cli.main import main
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()  # the command sets torch's threads from --ncpus
    try:
        _run_command_lines(tmp_path, capsys, main)
    finally:
        torch.set_num_threads(threads)


def _run_command_lines(tmp_path, capsys, main):
    star_path, model_file, _ = _write_dataset(tmp_path, halves=False, method="isonet2")
    # IsoNet2 spelling: positional STAR and MODEL, booleans as values
    assert main(["predict", str(star_path), str(model_file), "--output_dir", "out",
                 "--apply_mw_x1", "False", "--padding_factor", "2", "--batch_size", "2",
                 "--tomo_idx", "2", "--device", "cpu", "--ncpus", "1"]) == 0
    assert (tmp_path / "out" / "tomo_002_corrected.mrc").is_file()
    assert star.TomogramsTable.read(star_path).value(1, star.CORRECTED) == "out/tomo_002_corrected.mrc"
    # --model twin, dashed spelling
    assert main(["predict", "--star_file", str(star_path), "--model", str(model_file),
                 "--output-dir", "out2", "--tomo-idx", "1", "--device", "cpu"]) == 0
    assert (tmp_path / "out2" / "tomo_001_corrected.mrc").is_file()
    capsys.readouterr()
    assert main(["predict", str(star_path), str(tmp_path / "nope.pt"), "--device", "cpu"]) == 2
    assert "nope.pt" in capsys.readouterr().err
    assert main(["predict", str(star_path), "--device", "cpu"]) == 2
    assert "model file is required" in capsys.readouterr().err
