"""Simulator: determinism, phantom in the slab, wedge convention, even/odd noise, quality, CLI."""
import json

import numpy as np
import pytest

from isonet2core.cli.main import main
from isonet2core.imaging import ctf, fourier, metrics, wedge
from isonet2core.io import mrcio
from isonet2core.simulation.simulate import (
    ACQUISITION_FILE,
    CTF_FOLDER,
    TILT_FOLDER,
    VOLUME_FOLDERS,
    SimulationConfig,
    format_imod_defocus,
    simulate_dataset,
    simulate_tomogram,
    slab_bounds,
    tilt_angles,
    tomogram_name,
)

SMALL = (32, 64, 64)
MEDIUM = (48, 96, 96)


@pytest.fixture(scope="module")
def medium():
    """A noisy tomogram and its noise-free twin (same seed: same phantom)."""
    noisy = simulate_tomogram(SimulationConfig(shape=MEDIUM), seed=3)
    clean = simulate_tomogram(SimulationConfig(shape=MEDIUM, dose_snr=None), seed=3)
    return noisy, clean


def test_same_seed_is_identical_and_another_seed_differs():
    cfg = SimulationConfig(shape=SMALL)
    a, b, c = (simulate_tomogram(cfg, seed=s) for s in (5, 5, 6))
    for key in VOLUME_FOLDERS:
        np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a[key], c[key])
        assert a[key].dtype == np.float32 and a[key].shape == SMALL
    # the seed argument defaults to cfg.seed
    np.testing.assert_array_equal(simulate_tomogram(SimulationConfig(shape=SMALL, seed=5))["full"], a["full"])


def test_tilt_angles_and_halves():
    cfg = SimulationConfig(tilt_min_deg=-50, tilt_max_deg=40, tilt_step_deg=3)
    angles = tilt_angles(cfg)
    np.testing.assert_allclose(angles, np.arange(-50, 40.5, 3))
    assert tilt_angles(SimulationConfig()).tolist() == list(range(-60, 61, 3))
    result = simulate_tomogram(SimulationConfig(shape=SMALL, tilt_min_deg=-50, tilt_max_deg=40), seed=0)
    assert result["even_tilts"].tolist() == list(range(0, len(angles), 2))
    assert result["odd_tilts"].tolist() == list(range(1, len(angles), 2))
    assert (result["tilt_min_deg"], result["tilt_max_deg"]) == (-50.0, 40.0)
    np.testing.assert_allclose(result["full"], (result["even"] + result["odd"]) / 2, atol=1e-6)


def test_ground_truth_is_protein_dark_and_inside_the_slab(medium):
    truth = medium[0]["ground_truth"]
    z0, z1 = slab_bounds(MEDIUM, SimulationConfig().slab_fraction)
    assert medium[0]["slab_z"] == (z0, z1)
    assert (z0, z1) == (9, 38)                                 # 29 = round(0.6 * 48) slices, centred
    assert np.all(truth[:z0] == 0) and np.all(truth[z1:] == 0)
    assert truth.max() <= 0 and truth.min() < -0.5             # specimen negative, solvent 0
    inside = truth[z0:z1]
    assert 0.05 < np.mean(inside < -0.1) < 0.6                 # objects fill part of the slab
    assert slab_bounds((64, 8, 8), 1.0) == (0, 64)


def test_noise_free_reconstruction_follows_the_wedge_convention():
    """Tilts (-50, +40) fill the measured region of wedge_mask(-50, 40), not the mirrored one."""
    for tilt, mirrored_min in (((-50.0, 40.0), 0.08), ((-60.0, 20.0), 0.3)):
        cfg = SimulationConfig(shape=SMALL, tilt_min_deg=tilt[0], tilt_max_deg=tilt[1], dose_snr=None)
        result = simulate_tomogram(cfg, seed=1)
        assert result["noise_sigma"] == 0.0
        own = metrics.wedge_power_fraction(result["full"], *tilt)
        mirrored = metrics.wedge_power_fraction(result["full"], -tilt[1], -tilt[0])
        truth = metrics.wedge_power_fraction(result["ground_truth"], *tilt)
        assert own < 0.07 and truth > 0.4                      # discretisation leaks a few percent
        assert mirrored > mirrored_min and mirrored > 2.5 * own


def test_even_and_odd_noise_are_independent(medium):
    noisy, clean = medium
    truth = noisy["ground_truth"]
    np.testing.assert_array_equal(truth, clean["ground_truth"])
    noise_even = noisy["even"] - clean["even"]
    noise_odd = noisy["odd"] - clean["odd"]
    assert abs(metrics.pearson(noise_even, noise_odd)) < 0.03
    assert abs(metrics.pearson(noise_even, truth)) < 0.03
    # the halves share the signal only: their difference holds none of the ground truth
    assert abs(metrics.pearson(noisy["even"] - noisy["odd"], truth)) < 0.05
    for half in ("even", "odd"):
        assert metrics.pearson(noisy[half], truth) > 0.15
    # halves of the same phantom correlate through the signal, not through shared noise
    assert metrics.pearson(noisy["even"], noisy["odd"]) > 0.05


def test_raw_maps_correlate_with_the_ground_truth_in_the_stated_range(medium):
    noisy, clean = medium
    truth = noisy["ground_truth"]
    r_full = metrics.pearson(noisy["full"], truth)
    r_halves = [metrics.pearson(noisy[h], truth) for h in ("even", "odd")]
    assert 0.25 < r_full < 0.5
    assert all(0.15 < r < r_full for r in r_halves)
    assert metrics.pearson(clean["full"], truth) > r_full + 0.1
    # the missing wedge: in it, the raw map agrees with the truth far less than overall (what
    # agreement there is sits near the wedge's edges, where the finite box spreads the planes)
    freq, curve = metrics.wedge_fsc(noisy["full"], truth, -60, 60)
    in_wedge = metrics.mean_fsc(freq, curve, f_max=0.3)
    freq, curve = metrics.fsc(noisy["full"], truth)
    overall = metrics.mean_fsc(freq, curve, f_max=0.3)
    assert overall > 0.5 and in_wedge < overall - 0.25


def test_ctf_is_visible_in_the_noise_free_reconstruction(medium):
    """Per shell of the measured region, power(WBP) / power(truth) follows T^2: a deep minimum
    at the first CTF zero, a maximum at the first peak (defaults: 10 A/pixel, 5 um defocus)."""
    clean = medium[1]
    cfg = SimulationConfig()
    n = MEDIUM[1] // 2
    radius = fourier.radial_freq(MEDIUM, rfft=True).numpy()
    shell = np.rint(radius / (0.5 / n)).astype(int)
    select = (wedge.wedge_mask(MEDIUM, -60, 60, rfft=True).numpy() == 1) & (shell > 0) & (shell <= n)
    power = [np.bincount(shell[select], weights=np.abs(np.fft.rfftn(clean[k])[select]) ** 2,
                         minlength=n + 1)[1:] for k in ("full", "ground_truth")]
    ratio = power[0] / power[1]
    freq = np.arange(1, n + 1) * 0.5 / n                               # cycles/voxel

    def at(f_per_a):
        return ratio[int(np.argmin(np.abs(freq - f_per_a * cfg.pixel_size_a)))]

    optics = (cfg.defocus_a, cfg.voltage_kv, cfg.cs_mm, cfg.amplitude_contrast)
    zero = ctf.ctf_zero_freqs(1, *optics)[0] * cfg.pixel_size_a
    assert 0.25 < zero < 0.4                                           # well inside Nyquist
    assert at(ctf.ctf_zero_freqs(1, *optics)[0]) < 0.15 * at(ctf.first_peak_freq(*optics))
    t2 = ctf.ctf_1d(n + 1, cfg.pixel_size_a, *optics)[1:] ** 2          # same shell centres
    below = freq < zero + 0.05
    assert metrics.pearson(ratio[below], t2[below]) > 0.9


def test_invalid_settings_are_rejected_before_work():
    with pytest.raises(ValueError, match="shape"):
        SimulationConfig(shape=(8, 64, 64)).validate()
    with pytest.raises(ValueError, match="dose_snr"):
        simulate_tomogram(SimulationConfig(shape=SMALL, dose_snr=0.0))
    with pytest.raises(ValueError, match="fewer than 4 tilts"):
        SimulationConfig(tilt_min_deg=-3, tilt_max_deg=3, tilt_step_deg=3).validate()
    with pytest.raises(ValueError, match="n_tomograms"):
        simulate_dataset("unused", SimulationConfig(shape=SMALL), 0)


def _parse_defocus(path):
    """Test-side reader of an IMOD defocus file (version 2): [(start, end, a1, a2, nm)], version."""
    lines = path.read_text().splitlines()
    first = lines[0].split()
    version = int(first[5])
    rows = [tuple(float(v) for v in line.split()[:5]) for line in lines]
    assert all(len(line.split()) == 5 for line in lines[1:])
    return rows, version


def test_cli_writes_the_dataset(tmp_path, capsys):
    out = tmp_path / "sim"
    rc = main(["simulate", "--output_dir", str(out), "--n_tomograms", "2", "--shape", "32,64,64",
               "--pixel-size", "8", "--tilt_min", "-50", "--tilt_max", "40", "--defocus", "30000",
               "--defocus_step", "5000", "--dose_snr", "20", "--seed", "4"])
    assert rc == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 2 and "tomo_001" in printed[0] and "tomo_002" in printed[1]
    angles = np.arange(-50, 40.5, 3)
    for i in (1, 2):
        name = tomogram_name(i)
        assert name == f"tomo_00{i}"
        maps = {}
        for folder in VOLUME_FOLDERS:
            maps[folder], voxel = mrcio.read_mrc(out / folder / f"{name}.mrc")
            assert maps[folder].shape == SMALL and voxel == pytest.approx(8.0)
        # the files hold the in-memory simulation of the same seed and defocus
        expected = simulate_tomogram(SimulationConfig(shape=SMALL, pixel_size_a=8, tilt_min_deg=-50,
                                                      tilt_max_deg=40, dose_snr=20),
                                     seed=4 + i - 1, defocus_a=30000 + 5000 * (i - 1))
        for folder in VOLUME_FOLDERS:
            np.testing.assert_array_equal(maps[folder], expected[folder])
        rows, version = _parse_defocus(out / CTF_FOLDER / f"{name}.defocus")
        assert version == 2 and len(rows) == len(angles)
        for k, (start, end, a1, a2, nm) in enumerate(rows, start=1):
            assert start == end == k and a1 == a2 == pytest.approx(angles[k - 1])
            assert nm == pytest.approx((30000 + 5000 * (i - 1)) / 10)
        tlt = np.loadtxt(out / TILT_FOLDER / f"{name}.tlt")
        np.testing.assert_allclose(tlt, angles)
    acquisition = json.loads((out / ACQUISITION_FILE).read_text())
    assert acquisition["pixel_size_a"] == 8.0 and acquisition["tilt_min_deg"] == -50.0
    assert [t["defocus_a"] for t in acquisition["tomograms"]] == [30000.0, 35000.0]
    assert acquisition["tomograms"][1]["full"] == "full/tomo_002.mrc"


def test_cli_rejects_bad_options_with_exit_2(tmp_path, capsys):
    assert main(["simulate", "--shape", "32,64,64"]) == 2                    # no output_dir
    assert main(["simulate", "-o", str(tmp_path / "x"), "--shape", "32,64"]) == 2
    assert main(["simulate", "-o", str(tmp_path / "x"), "--tilt_min", "-95"]) == 2
    assert main(["simulate", "-o", str(tmp_path / "x"), "--n_tomograms", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("isonet2 simulate: error:") for line in err)
    assert not (tmp_path / "x").exists()                                     # nothing written
    assert main(["simulate", "--help"]) == 0


def test_imod_reads_the_defocus_file(tmp_path):
    """scipion-em-imod's own parser (used by tomo's CTF import) reads the file in Angstrom."""
    dataimport = pytest.importorskip("imod.convert.dataimport")
    path = tmp_path / "t.defocus"
    angles = [-6.0, -3.0, 0.0, 3.0, 6.0]
    path.write_text(format_imod_defocus(angles, 42000.0))
    parser = dataimport.ImodCtfParser(None)
    flag = parser.getDefocusFileFlag(str(path))
    assert flag == 0
    defocus = parser.readCTFEstimationInfoFile(str(path), flag=flag)
    assert sorted(defocus) == [1, 2, 3, 4, 5]
    for values in defocus.values():
        assert [float(v) for v in values] == [pytest.approx(42000.0)]
