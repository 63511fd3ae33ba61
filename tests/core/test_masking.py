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


# ------------------------------------------------------------------ bounded memory (issue 30)
def _previous_make_mask(v, cfg):
    """make_mask as it was computed on the whole volume before slabs (np.percentile thresholds,
    scipy's 3-D filters), to pin the rule the slabs follow."""
    import scipy.ndimage as ndi
    binned = masking.bin2(v)
    smooth = ndi.gaussian_filter(binned, sigma=cfg.patch_size / 2.0, mode="reflect")
    window = 2 * cfg.patch_size + 1
    density = ndi.maximum_filter(-smooth, size=window, mode="reflect")
    s = smooth.astype(np.float64)
    mean = ndi.uniform_filter(s, size=window, mode="reflect")
    std = np.sqrt(np.maximum(ndi.uniform_filter(s * s, size=window, mode="reflect") - mean * mean, 0))
    keep = np.ones(binned.shape, bool)
    for values, pct in ((density, cfg.density_percentage), (std.astype(np.float32), cfg.std_percentage)):
        if pct < 100:
            keep &= values >= np.percentile(values, 100.0 - pct)
    crop = masking.z_crop_slices(keep.shape[0], cfg.z_crop)
    keep[:crop] = False
    keep[keep.shape[0] - crop:] = False
    full = np.repeat(np.repeat(np.repeat(keep, 2, 0), 2, 1), 2, 2)
    return full[:v.shape[0], :v.shape[1], :v.shape[2]].astype(np.uint8)


CONFIGS = [MaskConfig(), MaskConfig(patch_size=2, density_percentage=33.3, std_percentage=71.0, z_crop=0.1),
           MaskConfig(patch_size=5, density_percentage=100, std_percentage=12.5, z_crop=0)]


def _smooth(shape, seed):
    import scipy.ndimage as ndi
    return ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(shape).astype(np.float32), 1.5)


@pytest.mark.parametrize("shape", [(48, 64, 64), (61, 50, 37)])
def test_make_mask_keeps_the_percentile_rule(shape):
    """The exact rank rule (module documentation) gives the masks np.percentile's thresholds gave."""
    v = _smooth(shape, 3)
    for cfg in CONFIGS:
        assert np.array_equal(masking.make_mask(v, cfg), _previous_make_mask(v, cfg)), cfg


def test_percentile_thresholds_from_two_order_statistics():
    """The two ranks numpy.percentile interpolates between, found exactly slab by slab, give its
    threshold bit for bit (decimal percentages whose index is an integer in decimals included)."""
    assert masking.percentile_ranks(101, 50) == (50, 51, 0.0)
    assert masking.percentile_ranks(11, 100) is None and masking.percentile_ranks(11, 1e-9)[:2] == (9, 10)
    rng = np.random.default_rng(0)
    for count in (1001, 1000, 7, 2):
        values = rng.standard_normal(count).astype(np.float32)
        values[: count // 3] = values[0]                     # ties
        for pct in (0.1, 12.5, 33.3, 50, 71, 99.9):
            low, high, weight = masking.percentile_ranks(count, pct)
            stats = masking._OrderStatistics([low, high])
            for part in np.array_split(values, 3):
                stats.add(part)
            stats.first_pass_done()
            for part in np.array_split(values, 4):
                stats.add(part)
            assert stats.values() == [float(np.sort(values)[low]), float(np.sort(values)[high])]
            threshold = masking._threshold(*stats.values(), weight)
            assert threshold == np.percentile(values, 100 - pct), (count, pct)


@pytest.mark.parametrize("shape", [(48, 64, 64), (61, 50, 37), (9, 40, 44)])
def test_slab_mask_equals_whole_volume_mask(tmp_path, shape):
    """Slabs of one to a few binned planes (density and std in scratch files or in memory), one
    map or two halves: the mask file is the in-memory whole-volume mask, voxel for voxel, and no
    scratch file stays behind."""
    v = _smooth(shape, 1)
    src = mrcio.write_mrc(tmp_path / "v.mrc", v, 10.0)
    n = -(-shape[0] // 2)
    for cfg in CONFIGS:
        whole = masking.make_mask(v, cfg)
        for slab, out, in_memory in ((1, 1, False), (2, 3, True), (max(1, n // 2), n, False)):
            plan = masking.MaskPlan(shape, slab, out, in_memory, 0, 0)
            kept = masking.mask_file([src], tmp_path / "m" / "a_mask.mrc", cfg, voxel_size_a=10.0, plan=plan)
            data, voxel = mrcio.read_mrc(tmp_path / "m" / "a_mask.mrc")
            assert np.array_equal(data, whole), (cfg, slab)
            assert kept == pytest.approx(whole.mean()) and voxel == pytest.approx(10.0)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["a_mask.mrc"]
    odd = _smooth(shape, 2)
    half = mrcio.write_mrc(tmp_path / "odd.mrc", odd, 10.0)
    planned = masking.plan_mask(shape, MaskConfig(), work_bytes=8 * 2 ** 20, n_maps=2)
    masking.mask_file([src, half], tmp_path / "h.mrc", MaskConfig(), voxel_size_a=10.0, plan=planned)
    assert np.array_equal(mrcio.read_mrc(tmp_path / "h.mrc")[0], masking.make_mask((v + odd) / np.float32(2)))


def test_mask_plan_follows_the_budget_and_refuses(tmp_path):
    cfg = MaskConfig()
    small = masking.plan_mask((48, 96, 96), cfg, work_bytes=None)
    assert small.slab_planes == 24 and small.in_memory and small.scratch_bytes == 0
    big = masking.plan_mask((320, 1448, 1448), cfg, work_bytes=None)
    assert big.slab_planes < 160 and not big.in_memory and big.peak_bytes <= masking.STREAM_BYTES
    assert big.scratch_bytes == 160 * 724 * 724 * 8
    with pytest.raises(ValueError, match=r"t9\.mrc.*needs at least .*MiB.*budget 1 GiB"):
        masking.plan_mask((320, 1448, 1448), cfg, work_bytes=16 * 2 ** 20, name="tomogram t9 (t9.mrc)",
                          budget="1 GiB")
    sim = simulate.simulate_tomogram(simulate.SimulationConfig(shape=(32, 64, 64)), seed=3)
    full = mrcio.write_mrc(tmp_path / "a.mrc", sim["full"], 10.0)
    star_file = tmp_path / "tomograms.star"
    star.TomogramsTable.from_records([{star.TOMO_NAME: "a", star.TOMO_FULL: str(full),
                                       star.PIXEL_SIZE: 10.0}]).write(star_file)
    before = star_file.read_text()
    with pytest.raises(ValueError) as refused:      # 1 MiB: less than the process already holds
        masking.mask_star(star_file, MaskConfig(memory_gb=0.001), tmp_path / "masks")
    assert "a.mrc" in str(refused.value) and "memory_gb 0.001" in str(refused.value)
    assert star_file.read_text() == before and not (tmp_path / "masks" / "a_mask.mrc").exists()
    assert cli_main.main(["make-mask", str(star_file), "--output_dir", str(tmp_path / "masks"),
                          "--memory_gb", "4"]) == 0
    assert np.array_equal(mrcio.read_mrc(tmp_path / "masks" / "a_mask.mrc")[0], masking.make_mask(sim["full"]))


def test_slab_memory_is_bounded(tmp_path):
    """64x512x512 float32 (64 MiB): the numpy allocations (tracemalloc) of the slabs with a 40 MiB
    budget stay below half the volume; the whole-volume mask's exceed it (measured: 21 and 122
    MiB)."""
    import tracemalloc
    shape = (64, 512, 512)
    volume = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    src = mrcio.write_mrc(tmp_path / "big.mrc", volume, 10.0)
    plan = masking.plan_mask(shape, MaskConfig(), work_bytes=40 * 2 ** 20)
    assert plan.slab_planes < 32
    peaks = {}
    for mode in ("slabs", "whole"):
        tracemalloc.start()
        try:
            if mode == "slabs":
                masking.mask_file([src], tmp_path / "m.mrc", MaskConfig(), voxel_size_a=10.0, plan=plan)
            else:
                masking.make_mask(volume, MaskConfig())
            peaks[mode] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks["slabs"] < 0.5 * volume.nbytes < peaks["whole"]
