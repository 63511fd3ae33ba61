"""End to end: simulate -> STAR -> denoise (Noise2Noise) -> predict, against ground truth.

Tiny (48 x 96 x 96, unet-small, 32^3 cubes, 2 epochs of 16 steps of 4 cubes). Measured with
these settings (seed 1): see the printed line; the raw full map (even/odd average) is the
baseline to beat.
"""

from isonet2core.cli.main import main
from isonet2core.imaging import metrics
from isonet2core.io import mrcio, star
from isonet2core.simulation.simulate import SimulationConfig, simulate_tomogram

SHAPE = (48, 96, 96)


def test_denoise_beats_the_raw_map(tmp_path, monkeypatch, capsys):
    sim = simulate_tomogram(SimulationConfig(shape=SHAPE, seed=1))
    for name in ("even", "odd"):
        mrcio.write_mrc(tmp_path / name / "tomo_001.mrc", sim[name], sim["pixel_size_a"])
    monkeypatch.chdir(tmp_path)
    table = star.TomogramsTable.from_records([{
        star.TOMO_NAME: "tomo_001", star.TOMO_HALF1: "even/tomo_001.mrc", star.TOMO_HALF2: "odd/tomo_001.mrc",
        star.PIXEL_SIZE: sim["pixel_size_a"], star.DEFOCUS: sim["defocus_a"],
        star.TILT_MIN: sim["tilt_min_deg"], star.TILT_MAX: sim["tilt_max_deg"], star.N_SUBTOMO: 64}])
    table.write(tmp_path / "tomograms.star")
    assert main(["denoise", "tomograms.star", "--arch", "unet-small", "--cube_size", "32", "--epochs", "2",
                 "--batch_size", "4", "--learning_rate", "2e-3", "--learning_rate_min", "5e-4",
                 "--output_dir", "den", "--device", "cpu", "--ncpus", "2", "--with_predict", "True"]) == 0
    out = star.TomogramsTable.read(tmp_path / "tomograms.star")
    denoised = mrcio.read_mrc(out.path(0, star.DENOISED))[0]
    truth = sim["ground_truth"]
    r_raw = metrics.pearson(sim["full"], truth)
    r_den = metrics.pearson(denoised, truth)
    with capsys.disabled():
        print(f"\ndenoise e2e: pearson raw {r_raw:.3f} denoised {r_den:.3f}")
    assert r_den > r_raw + 0.03
