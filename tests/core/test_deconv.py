"""Wiener deconvolution: quality against ground truth, rescaling, chunked mode, CLI."""
from pathlib import Path

import numpy as np
import pytest

from isonet2core.cli import main as cli_main
from isonet2core.config import DeconvConfig, Microscope
from isonet2core.io import mrcio, star
from isonet2core.simulation import simulate
from isonet2core.steps import deconv

SHAPE = (48, 96, 96)


def _pearson(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


@pytest.fixture(scope="module")
def sim():
    return simulate.simulate_tomogram(simulate.SimulationConfig(shape=SHAPE), seed=0)


def _microscope(sim):
    return Microscope(pixel_size_a=sim["pixel_size_a"], defocus_a=sim["defocus_a"],
                      voltage_kv=sim["voltage_kv"], cs_mm=sim["cs_mm"],
                      amplitude_contrast=sim["amplitude_contrast"])


def test_deconvolution_improves_correlation_with_ground_truth(sim):
    # measured (seed 0, 48x96x96, defaults of the simulator): raw full map r = 0.34,
    # deconvolved (snrfalloff 1, deconvstrength 1) r = 0.74; seeds 1 and 2 give 0.33 -> 0.75
    # and 0.36 -> 0.77
    gt = sim["ground_truth"]
    raw_r = _pearson(sim["full"], gt)
    out = deconv.deconvolve(sim["full"], _microscope(sim), DeconvConfig())
    dec_r = _pearson(out, gt)
    assert 0.25 < raw_r < 0.45
    assert dec_r > 0.65
    assert dec_r > raw_r + 0.25


def test_output_keeps_scale_and_contrast(sim):
    vol = sim["full"] * 3.0 + 7.0
    out = deconv.deconvolve(vol, _microscope(sim), DeconvConfig())
    assert out.dtype == np.float32 and out.shape == vol.shape
    assert out.mean() == pytest.approx(vol.mean(), abs=1e-3 * vol.std())
    assert out.std() == pytest.approx(vol.std(), rel=1e-3)
    # protein-dark contrast kept: positively correlated with the input and the ground truth
    assert _pearson(out, vol) > 0.3
    assert _pearson(out, sim["ground_truth"]) > 0.65


def test_phaseflipped_option_uses_abs_ctf(sim):
    m = _microscope(sim)
    a = deconv.deconvolve(sim["full"], m, DeconvConfig())
    b = deconv.deconvolve(sim["full"], m, DeconvConfig(phaseflipped=True))
    assert not np.allclose(a, b)
    # on data that are not phase flipped, pretending they are is worse
    assert _pearson(b, sim["ground_truth"]) < _pearson(a, sim["ground_truth"])


def test_chunked_matches_whole_volume(sim):
    m = _microscope(sim)
    whole = deconv.deconvolve(sim["full"], m, DeconvConfig())
    # measured: chunk 32 / overlap 0.25 -> r 0.9967, max |diff| 0.25 std;
    #           chunk 32 / overlap 0.45 -> r 0.9979, max |diff| 0.17 std;
    #           chunk 48 / overlap 0.25 -> r 0.9981, max |diff| 0.12 std
    chunked = deconv.deconvolve(sim["full"], m, DeconvConfig(chunk_size=32, overlap_rate=0.25, ncpus=2))
    assert _pearson(chunked, whole) > 0.99
    assert np.abs(chunked - whole).max() < 0.35 * whole.std()
    wider = deconv.deconvolve(sim["full"], m, DeconvConfig(chunk_size=32, overlap_rate=0.45))
    assert np.abs(wider - whole).max() < np.abs(chunked - whole).max()
    # a chunk as large as the volume is the whole-volume computation
    one = deconv.deconvolve(sim["full"], m, DeconvConfig(chunk_size=96))
    assert np.array_equal(one, whole)


def test_chunk_slices_tile_the_volume():
    cores = deconv.chunk_slices((40, 33, 16), 16)
    covered = np.zeros((40, 33, 16), dtype=int)
    for c in cores:
        covered[c] += 1
    assert np.all(covered == 1) and len(cores) == 3 * 3 * 1


def test_invalid_inputs(sim):
    m = _microscope(sim)
    with pytest.raises(ValueError, match="constant"):
        deconv.deconvolve(np.ones((16, 16, 16), np.float32), m, DeconvConfig())
    with pytest.raises(ValueError, match="z, y, x"):
        deconv.deconvolve(np.ones((16, 16), np.float32), m, DeconvConfig())
    with pytest.raises(ValueError, match="chunk_size"):
        deconv.deconvolve(sim["full"], m, DeconvConfig(chunk_size=8))


def _write_dataset(tmp_path: Path, sim, n=2):
    records = []
    for i in range(n):
        vol = sim["full"] if i == 0 else sim["full"][:, ::-1].copy()
        path = mrcio.write_mrc(tmp_path / "maps" / f"t{i + 1}.mrc", vol, sim["pixel_size_a"])
        records.append({star.TOMO_NAME: f"t{i + 1}", star.TOMO_FULL: str(path),
                        star.PIXEL_SIZE: sim["pixel_size_a"], star.DEFOCUS: sim["defocus_a"],
                        star.AC: sim["amplitude_contrast"]})
    star_file = tmp_path / "tomograms.star"
    star.TomogramsTable.from_records(records).write(star_file)
    return star_file


def test_cli_deconv_writes_maps_and_star(tmp_path, sim):
    star_file = _write_dataset(tmp_path, sim)
    out_dir = tmp_path / "elsewhere" / "dec"
    rc = cli_main.main(["deconv", str(star_file), "--output_dir", str(out_dir), "--tomo_idx", "2",
                        "--chunk_size", "None", "--ncpus", "1"])
    assert rc == 0
    table = star.TomogramsTable.read(star_file)
    assert table.value(0, star.DECONV) is None
    written = table.path(1, star.DECONV)
    assert written == out_dir / "t2_deconv.mrc" and written.is_file()
    data, voxel = mrcio.read_mrc(written)
    assert voxel == pytest.approx(sim["pixel_size_a"])
    expected = deconv.deconvolve(sim["full"][:, ::-1].copy(), _microscope(sim), DeconvConfig())
    assert np.allclose(data, expected, atol=1e-4 * expected.std())
    assert table.value(1, star.SNR_FALLOFF) == 1.0


def test_cli_deconv_validates_before_work(tmp_path, sim, capsys):
    star_file = _write_dataset(tmp_path, sim)
    (tmp_path / "maps" / "t2.mrc").unlink()
    out_dir = tmp_path / "dec"
    rc = cli_main.main(["deconv", str(star_file), "--output_dir", str(out_dir)])
    assert rc == 2
    assert "t2.mrc" in capsys.readouterr().err
    assert not (out_dir / "t1_deconv.mrc").exists()      # nothing done for the good one either
    rc = cli_main.main(["deconv", str(star_file), "--input_column", "rlnPixelSize"])
    assert rc == 2
    rc = cli_main.main(["deconv", str(star_file), "--tomo_idx", "7"])
    assert rc == 2


def test_snrfalloff_zero_is_a_constant_snr(sim):
    """The IsoNet2 program accepts --snrfalloff 0: the SNR does not fall with frequency, so
    less is filtered than with the default 1 (more high-frequency power left)."""
    import torch

    from isonet2core.imaging import ctf as ctf_mod
    x = torch.linspace(0, 0.5, 11)
    flat = ctf_mod.ssnr(x, 10.0, snrfalloff=0.0, deconvstrength=1.0, highpassnyquist=0.02)
    assert torch.allclose(flat[2:], torch.full((9,), 20.0 + 1e-6))     # 10^1 x 2 above the cut
    m = _microscope(sim)
    a = deconv.deconvolve(sim["full"], m, DeconvConfig(snrfalloff=1.0))
    b = deconv.deconvolve(sim["full"], m, DeconvConfig(snrfalloff=0.0))
    assert np.isfinite(b).all()
    hf = lambda v: float(np.abs(np.fft.rfftn(v))[..., -8:].mean())   # noqa: E731
    assert hf(b) > hf(a)
