"""The realistic lamella simulator: physics constants, atomic models, geometry, halves, truth."""
import json

import numpy as np
import pytest

from isonet2core.imaging import metrics
from isonet2core.simulation import lamella, structures

SMALL = dict(shape=(32, 48, 48), ice_thickness_a=160.0, n_vesicles=1, seed=3)


def test_physical_constants_known_values():
    # interaction constant at 300 kV: 6.53e-4 rad/(V A) (e.g. Kirkland's table: 0.000653)
    assert lamella.interaction_constant(300.0) == pytest.approx(6.526e-4, rel=2e-3)
    # Peng's carbon amplitude at s = 0 is the sum of its a_i: 2.5088 A
    assert float(lamella.scattering_amplitude("C", np.zeros(1))[0]) == pytest.approx(2.5088, abs=1e-4)
    # the mean inner potential of vitreous ice is about 4.5 V (measured 4.5-4.9 V)
    assert 4.4 < lamella.ice_potential_v() < 4.8
    # amplitudes fall with s
    s = np.array([0.0, 0.1, 0.3])
    assert np.all(np.diff(lamella.scattering_amplitude("O", s)) < 0)


def test_dose_symmetric_order():
    angles = [-6.0, -3.0, 0.0, 3.0, 6.0]
    # 0 first, then +3, -3, +6, -6
    assert lamella.dose_symmetric_order(angles).tolist() == [4, 2, 0, 1, 3]
    assert sorted(lamella.dose_symmetric_order(np.arange(-50, 41, 3.0)).tolist()) == list(range(31))


def test_atomic_models_and_assemblies():
    models = structures.load_structures()
    assert set(models) == {"3kpr", "6msm", "3pwp", "1bd2", "19hc", "1a28", "adk"}
    adk_xyz, adk_el = models["adk"]
    assert len(adk_el) == 1656 and np.allclose(adk_xyz.mean(0), 0, atol=0.05)
    apo_xyz, _ = structures.species_atoms("apoferritin")
    assert len(apo_xyz) == 24 * 1656
    radius = np.sqrt((apo_xyz ** 2).sum(1))
    assert 50 < np.percentile(radius, 95) < 75           # a hollow shell about 12-15 nm across
    ring_xyz, _ = structures.species_atoms("chaperonin")
    assert len(ring_xyz) == 14 * len(models["1a28"][1])
    ribo, _ = structures.species_atoms("ribosome")
    assert 90_000 < len(ribo) < 130_000                  # about 1.2 MDa of heavy atoms


def test_simulation_is_seeded_and_halves_are_independent_frames():
    cfg = lamella.LamellaConfig(**SMALL)
    a = lamella.simulate_lamella(cfg)
    b = lamella.simulate_lamella(cfg)
    c = lamella.simulate_lamella(cfg, seed=4)
    for key in ("full", "even", "odd", "ground_truth"):
        assert a[key].shape == (32, 48, 48) and a[key].dtype == np.float32
        assert np.array_equal(a[key], b[key])
    assert not np.array_equal(a["ground_truth"], c["ground_truth"])
    assert np.allclose(a["full"], 0.5 * (a["even"] + a["odd"]))
    # the same specimen, independent counting noise: correlated, far from identical
    r = metrics.pearson(a["even"], a["odd"])
    assert 0.05 < r < 0.9
    # the truth is protein dark and empty outside the 160 A ice slab (20 of 32 slices)
    truth = a["ground_truth"]
    assert truth.min() < -0.5 and truth.mean() < 0
    outside = np.concatenate([truth[:3], truth[-3:]])
    assert np.abs(outside).max() < 0.1 * np.abs(truth).max()
    # weighted back-projection of a +-60 series: little of the raw map's power in the wedge
    assert metrics.wedge_power_fraction(a["full"], -60, 60) < 0.25
    assert metrics.wedge_power_fraction(truth, -60, 60) > 0.25
    assert metrics.pearson(a["full"], truth) > 0.05


def test_lamella_geometry_and_dataset(tmp_path):
    cfg = lamella.geometry_config("lamella", **SMALL)
    assert (cfg.tilt_min_deg, cfg.tilt_max_deg, cfg.pretilt_deg) == (-50.0, 40.0, 10.0)
    records = lamella.write_lamella_dataset(tmp_path, cfg)
    acq = json.loads((tmp_path / "acquisition.json").read_text())
    assert acq["simulator"] == "lamella" and acq["tilt_min_deg"] == -50.0 and acq["tilt_max_deg"] == 40.0
    for key in ("full", "even", "odd", "ground_truth", "defocus_file", "tilt_file"):
        assert (tmp_path / acq["tomograms"][0][key]).is_file()
    assert records[0]["name"] == "tomo_001"
    with pytest.raises(ValueError, match="geometry"):
        lamella.geometry_config("flat")
    with pytest.raises(ValueError, match="pretilt"):
        lamella.LamellaConfig(pretilt_deg=50).validate()
