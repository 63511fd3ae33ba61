"""End to end: simulate -> prepare-star -> refine (isonet2-n2n) -> predict, against ground truth.

Tiny on purpose (48 x 96 x 96 voxels, unet-small, 32^3 cubes, 4 epochs of 12 steps of 4 cubes,
about a minute on 2 CPU cores): the assertions are the method's claims, at a tenth of a real
run. Measured with these settings (seed 0): Pearson with the ground truth raw full map 0.342
(= the even/odd average; even half alone 0.262), refined 0.47; missing-wedge FSC with the
ground truth, mean over shells up to 0.25 cycles/voxel: raw 0.37 (shells near the wedge's edge
and at low frequency are partly measured on the simulator's grid), refined 0.53.
"""
import numpy as np
import pytest

from isonet2core import metrics, mrcio, star
from isonet2core.cli.main import main
from isonet2core.simulate import SimulationConfig, simulate_tomogram

SHAPE = (48, 96, 96)
WEDGE_FSC_MAX_FREQ = 0.25  # cycles/voxel; the first CTF zero of the simulation is at 0.31


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("refine_e2e")
    sim = simulate_tomogram(SimulationConfig(shape=SHAPE, seed=0))
    for name in ("even", "odd", "full", "ground_truth"):
        mrcio.write_mrc(root / name / "tomo_001.mrc", sim[name], sim["pixel_size_a"])
    return root, sim


def _wedge_fsc_mean(a, b, sim):
    freq, values = metrics.wedge_fsc(a, b, sim["tilt_min_deg"], sim["tilt_max_deg"])
    return metrics.mean_fsc(freq, values, f_max=WEDGE_FSC_MAX_FREQ)


def test_refine_beats_raw_and_the_half_average_and_fills_the_wedge(dataset, monkeypatch, capsys):
    root, sim = dataset
    monkeypatch.chdir(root)
    assert main(["prepare-star", "--even", "even", "--odd", "odd", "--defocus", str(sim["defocus_a"]),
                 "--tilt_min", str(sim["tilt_min_deg"]), "--tilt_max", str(sim["tilt_max_deg"]),
                 "--number_subtomos", "48"]) == 0
    assert main(["refine", "tomograms.star", "--arch", "unet-small", "--cube_size", "32", "--epochs", "4",
                 "--batch_size", "4", "--learning_rate", "1e-3", "--learning_rate_min", "3e-4",
                 "--save_interval", "4", "--output_dir", "refined", "--device", "cpu", "--ncpus", "2"]) == 0
    model = root / "refined" / "network_isonet2-n2n_unet-small_32_full.pt"
    assert model.is_file() and (root / "refined" / "network_isonet2-n2n_unet-small_32_epoch004.pt").is_file()
    assert main(["predict", "tomograms.star", str(model), "--output_dir", "corrected", "--device", "cpu",
                 "--ncpus", "2"]) == 0
    table = star.TomogramsTable.read(root / "tomograms.star")
    corrected = mrcio.read_mrc(table.path(0, star.CORRECTED))[0]

    truth = sim["ground_truth"]
    average = 0.5 * (sim["even"] + sim["odd"])
    r_raw = metrics.pearson(sim["full"], truth)
    r_avg = metrics.pearson(average, truth)
    r_ref = metrics.pearson(corrected, truth)
    w_raw = _wedge_fsc_mean(sim["full"], truth, sim)
    w_ref = _wedge_fsc_mean(corrected, truth, sim)
    with capsys.disabled():
        print(f"\nrefine e2e: pearson raw {r_raw:.3f} even/odd average {r_avg:.3f} refined {r_ref:.3f}; "
              f"wedge FSC (<= {WEDGE_FSC_MAX_FREQ} cycles/voxel) raw {w_raw:.3f} refined {w_ref:.3f}")
    assert r_ref > r_raw + 0.05
    assert r_ref > r_avg + 0.05
    assert w_ref > w_raw + 0.05


def _star(root, name, records):
    path = root / name
    star.TomogramsTable.from_records(records).write(path)
    return str(path)


def test_refine_refuses_bad_inputs_before_training(dataset, tmp_path, monkeypatch, capsys):
    root, sim = dataset
    monkeypatch.chdir(root)
    base = {star.TOMO_NAME: "tomo_001", star.PIXEL_SIZE: 10.0, star.TILT_MIN: -60.0, star.TILT_MAX: 60.0}
    fast = ["--arch", "unet-small", "--epochs", "1", "--device", "cpu", "--output_dir", str(tmp_path / "out")]

    def refused(argv, *fragments):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert all(f in err for f in fragments), err
        assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.pt"))

    single = _star(tmp_path, "single.star", [{**base, star.TOMO_FULL: str(root / "full" / "tomo_001.mrc")}])
    refused(["refine", single, "--method", "isonet2-n2n", *fast], "needs even/odd halves", "tomo_001")
    halves = _star(tmp_path, "halves.star", [{**base, star.TOMO_HALF1: str(root / "even" / "tomo_001.mrc"),
                                              star.TOMO_HALF2: str(root / "odd" / "tomo_001.mrc")}])
    refused(["refine", halves, "--cube_size", "64", *fast], "tomo_001", "smaller than cube_size 64")
    flat = tmp_path / "flat.mrc"
    mrcio.write_mrc(flat, np.zeros(SHAPE, np.float32), 10.0)
    const = _star(tmp_path, "const.star", [{**base, star.TOMO_HALF1: str(root / "even" / "tomo_001.mrc"),
                                             star.TOMO_HALF2: str(flat)}])
    refused(["refine", const, "--cube_size", "32", *fast], "flat.mrc", "constant")
    refused(["refine", halves, "--cube_size", "40", *fast], "multiple of 16")
    refused(["refine", halves, "--cube_size", "32", "--resume", str(tmp_path / "none.pt"), *fast], "none.pt")
