"""make_mask: binning, known behaviour, z crop, quality against the simulated specimen slab, CLI."""
import numpy as np
import pytest

from isonet2core.cli import main as cli_main
from isonet2core.config import DeconvConfig, MaskConfig, Microscope
from isonet2core.io import mrcio, star
from isonet2core.simulation import simulate
from isonet2core.steps import deconv, masking


def test_bin2_block_means_and_odd_sizes():
    v = np.arange(4 * 4 * 4, dtype=np.float32).reshape(4, 4, 4)
    b = masking.bin2(v)
    assert b.shape == (2, 2, 2)
    assert b[0, 0, 0] == pytest.approx(v[:2, :2, :2].mean())
    assert masking.bin2(np.zeros((5, 6, 7))).shape == (3, 3, 4)


def test_local_std_known_values():
    v = np.zeros((9, 9, 9), np.float32)
    assert np.allclose(masking.local_std(v, 3), 0)
    v[4, 4, 4] = 27.0
    s = masking.local_std(v, 3)
    # a 3^3 window holding one 27 and 26 zeros: mean 1, mean of squares 27 -> std sqrt(26)
    assert s[4, 4, 4] == pytest.approx(np.sqrt(26.0), rel=1e-5)
    assert s[0, 0, 0] == 0


def test_mask_finds_dark_objects_and_crops_z():
    rng = np.random.default_rng(0)
    v = rng.normal(0, 0.1, (32, 48, 48)).astype(np.float32)
    v[12:20, 10:20, 10:20] -= 2.0          # a protein-dark block
    v[12:20, 30:40, 30:40] += 2.0          # a bright block (not protein)
    m = masking.make_mask(v, MaskConfig(patch_size=2, density_percentage=20, std_percentage=50, z_crop=0.5))
    assert m.dtype == np.uint8 and m.shape == v.shape and set(np.unique(m)) <= {0, 1}
    assert m[14:18, 12:18, 12:18].mean() == 1.0
    assert m[14:18, 32:38, 32:38].mean() == 0.0
    # z_crop 0.5: a quarter of the binned thickness (16 -> 4 slices, 8 voxels) at each side
    assert m[:8].sum() == 0 and m[-8:].sum() == 0
    # 100 % keeps everything the z crop leaves
    everything = masking.make_mask(v, MaskConfig(density_percentage=100, std_percentage=100, z_crop=0))
    assert everything.all()


def test_mask_validation():
    with pytest.raises(ValueError, match="constant"):
        masking.make_mask(np.ones((8, 8, 8)))
    with pytest.raises(ValueError, match="z, y, x"):
        masking.make_mask(np.ones((8, 8)))
    with pytest.raises(ValueError, match="density_percentage"):
        masking.make_mask(np.random.rand(8, 8, 8), MaskConfig(density_percentage=0))


@pytest.mark.parametrize("seed", [0, 1])
def test_mask_keeps_specimen_and_drops_empty_region(seed):
    sim = simulate.simulate_tomogram(simulate.SimulationConfig(shape=(48, 96, 96)), seed=seed)
    m = Microscope(pixel_size_a=sim["pixel_size_a"], defocus_a=sim["defocus_a"],
                   amplitude_contrast=sim["amplitude_contrast"])
    dec = deconv.deconvolve(sim["full"], m, DeconvConfig())
    mask = masking.make_mask(dec, MaskConfig()).astype(bool)
    gt = sim["ground_truth"]
    specimen = gt < -0.1 * np.abs(gt).max()
    z0, z1 = sim["slab_z"]
    empty = np.ones(gt.shape[0], bool)
    empty[z0:z1] = False
    # measured with the defaults (seeds 0, 1, 2): specimen kept 0.91 / 0.92 / 0.94,
    # empty slices above/below the slab masked out 0.88 / 0.85 / 0.89, volume kept ~0.43
    assert mask[specimen].mean() >= 0.85
    assert 1.0 - mask[empty].mean() >= 0.70
    assert mask[z0:z1].mean() > mask[empty].mean() + 0.4


def test_cli_make_mask(tmp_path):
    sim = simulate.simulate_tomogram(simulate.SimulationConfig(shape=(32, 64, 64)), seed=3)
    even = mrcio.write_mrc(tmp_path / "even" / "a.mrc", sim["even"], 10.0)
    odd = mrcio.write_mrc(tmp_path / "odd" / "a.mrc", sim["odd"], 10.0)
    star_file = tmp_path / "tomograms.star"
    star.TomogramsTable.from_records([{star.TOMO_NAME: "a", star.TOMO_HALF1: str(even),
                                       star.TOMO_HALF2: str(odd), star.PIXEL_SIZE: 10.0}]).write(star_file)
    # no rlnDeconvTomoName and no full map: the mean of the halves is masked
    rc = cli_main.main(["make_mask", str(star_file), "--output_dir", str(tmp_path / "masks"),
                        "--density_percentage", "60", "--std_percentage", "80"])
    assert rc == 0
    table = star.TomogramsTable.read(star_file)
    path = table.path(0, star.MASK)
    assert path == tmp_path / "masks" / "a_mask.mrc"
    data, voxel = mrcio.read_mrc(path)
    expected = masking.make_mask((sim["even"] + sim["odd"]) / 2,
                                 MaskConfig(density_percentage=60, std_percentage=80))
    assert voxel == pytest.approx(10.0) and np.array_equal(data, expected)
    assert cli_main.main(["make-mask", str(star_file), "--z_crop", "1.5"]) == 2
