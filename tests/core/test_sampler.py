"""Cube sampling (refine step 1): identical coordinates in halves, mask, borders, seeds."""
import mrcfile
import numpy as np
import pytest

from isonet2core.config import Microscope
from isonet2core.imaging import normalize
from isonet2core.io import mrcio
from isonet2core.training import sampler

CUBE = 16
SHAPE = (32, 40, 48)
MIC = Microscope(pixel_size_a=10.0)


def _coordinate_map(shape=SHAPE):
    z, y, x = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    return z * 10000 + y * 100 + x


def _source(mask=None, n=50):
    even = _coordinate_map()
    odd = 2.0 * even + 5.0
    stats = (normalize.normalization_stats(even), normalize.normalization_stats(odd))
    return sampler.TomogramSource("t", (even, odd), stats, MIC, n, mask)


def test_even_and_odd_cubes_come_from_identical_coordinates():
    src = _source()
    plan = sampler.epoch_plan([src], CUBE, seed=3, epoch=1)
    cubes = sampler.load_batch([src], plan[:6], CUBE)
    assert cubes.shape == (2, 6, CUBE, CUBE, CUBE)
    (m0, s0), (m1, s1) = src.stats
    even = cubes[0] * s0 + m0
    odd = cubes[1] * s1 + m1
    np.testing.assert_allclose(odd, 2 * even + 5, rtol=1e-5)
    # the cube is centred on the planned centre: cube[n//2, n//2, n//2] is the centre voxel
    for ref, cube in zip(plan[:6], even):
        z, y, x = ref.centre
        assert cube[CUBE // 2, CUBE // 2, CUBE // 2] == pytest.approx(z * 10000 + y * 100 + x, abs=0.5)


def test_centres_stay_half_a_cube_from_the_borders():
    src = _source(n=2000)
    centres = sampler.sample_centres(src, 2000, CUBE, np.random.default_rng(0))
    lo, hi = sampler.centre_bounds(SHAPE, CUBE)
    assert (centres >= CUBE // 2).all() and (centres <= np.array(SHAPE) - CUBE + CUBE // 2).all()
    assert (centres.min(axis=0) == lo).all() and (centres.max(axis=0) == hi).all()  # the range is used
    cubes = sampler.extract_cubes(src.maps[0], centres[:50], CUBE, 0.0, 1.0)
    assert cubes.shape == (50, CUBE, CUBE, CUBE)


@pytest.mark.parametrize("max_candidates", [20_000_000, 50])
def test_centres_lie_inside_the_mask(monkeypatch, max_candidates):
    monkeypatch.setattr(sampler, "_MAX_MASK_CANDIDATES", max_candidates)  # 50: strided path
    mask = np.zeros(SHAPE, dtype=np.float32)
    mask[10:20, 12:30, 20:40] = 1.0
    mask[0:8] = 1.0  # too close to the border to host a centre
    src = _source(mask=mask)
    centres = sampler.sample_centres(src, 500, CUBE, np.random.default_rng(1))
    assert all(mask[tuple(c)] > 0 for c in centres)
    assert (centres[:, 0] >= CUBE // 2).all()
    assert len({tuple(c) for c in centres}) > 50


def _listed_centres(mask, n, rng, max_candidates):
    """The draws of the sampler before issue 30 (every listed voxel kept): the reference the
    compact row counts must reproduce exactly, for the fixed-seed behaviour."""
    lo, hi = sampler.centre_bounds(mask.shape, CUBE)
    stride = max(1, int(np.ceil((np.prod(hi - lo + 1) / max_candidates) ** (1 / 3))))
    region = mask[lo[0]:hi[0] + 1:stride, lo[1]:hi[1] + 1:stride, lo[2]:hi[2] + 1:stride]
    flat = np.flatnonzero(region > 0)
    picks = np.stack(np.unravel_index(flat[rng.integers(0, flat.size, size=n)], region.shape), axis=1)
    centres = lo + picks * stride
    if stride > 1:
        jittered = np.minimum(centres + rng.integers(0, stride, size=(n, 3)), hi)
        keep = np.asarray([mask[tuple(c)] > 0 for c in jittered])
        centres = np.where(keep[:, None], jittered, centres)
    return centres


@pytest.mark.parametrize("max_candidates", [20_000_000, 300])
def test_mask_draws_are_those_of_the_listed_voxels(tmp_path, monkeypatch, max_candidates):
    monkeypatch.setattr(sampler, "_MAX_MASK_CANDIDATES", max_candidates)  # 300: stride 4
    rng = np.random.default_rng(5)
    mask = (rng.random(SHAPE) < 0.3).astype(np.float32)
    mask[:, :, :20] = 0                                       # rows without any candidate
    src = _source(mask=mask)
    draws = sampler.sample_centres(src, 400, CUBE, np.random.default_rng(9))
    np.testing.assert_array_equal(draws, _listed_centres(mask, 400, np.random.default_rng(9), max_candidates))
    candidates = sampler.mask_candidates(src, CUBE)
    assert candidates.row_ends.size == candidates.region_shape[0] * candidates.region_shape[1]
    assert candidates.count == int(np.count_nonzero(
        mask[8:25:candidates.stride, 8:33:candidates.stride, 8:41:candidates.stride]))
    # the mask on disk (int8, mode 0), read through a memory map: the same draws
    path = tmp_path / "mask.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(mask.astype(np.int8))
    even, odd = tmp_path / "e.mrc", tmp_path / "o.mrc"
    mrcio.write_mrc(even, src.maps[0], 10.0)
    mrcio.write_mrc(odd, src.maps[1], 10.0)
    on_disk = sampler.open_source("t", (even, odd), MIC, 50, CUBE, mask_path=path)
    assert isinstance(on_disk.mask, mrcio.MappedVolume)
    np.testing.assert_array_equal(sampler.sample_centres(on_disk, 400, CUBE, np.random.default_rng(9)), draws)


def test_a_mask_changed_on_disk_is_named(tmp_path):
    even = mrcio.write_mrc(tmp_path / "e.mrc", _coordinate_map(), 10.0)
    mask = np.zeros(SHAPE, dtype=np.float32)
    mask[10:20, 10:30, 10:40] = 1
    path = mrcio.write_mrc(tmp_path / "m.mrc", mask, 10.0)
    src = sampler.open_source("t", (even,), MIC, 50, CUBE, mask_path=path)
    mrcio.write_mrc(path, np.where(np.arange(SHAPE[2]) < 12, mask, 0), 10.0)   # fewer centres now
    src.mask = mrcio.open_mapped(path)
    with pytest.raises(ValueError, match=r"m\.mrc: the mask changed while in use"):
        sampler.sample_centres(src, 200, CUBE, np.random.default_rng(0))


def test_a_mask_without_room_for_a_centre_is_an_error():
    mask = np.zeros(SHAPE, dtype=np.float32)
    mask[:4] = 1
    with pytest.raises(ValueError, match="allows no cube centre"):
        sampler.mask_candidates(_source(mask=mask), CUBE)


def test_plans_are_reproducible_per_seed_and_epoch():
    srcs = [_source(n=7), _source(n=5)]
    a = sampler.epoch_plan(srcs, CUBE, seed=0, epoch=4)
    b = sampler.epoch_plan(srcs, CUBE, seed=0, epoch=4)
    c = sampler.epoch_plan(srcs, CUBE, seed=0, epoch=5)
    d = sampler.epoch_plan(srcs, CUBE, seed=1, epoch=4)
    assert a == b and a != c and a != d
    assert sorted(r.source for r in a) == [0] * 7 + [1] * 5
    assert [r.source for r in a] != sorted(r.source for r in a)  # shuffled across tomograms


def test_batches_drop_the_remainder_and_fill_short_plans():
    plan = sampler.epoch_plan([_source(n=10)], CUBE, 0, 1)
    assert [len(b) for b in sampler.batches(plan, 4)] == [4, 4]
    short = sampler.batches(plan[:3], 4)
    assert len(short) == 1 and len(short[0]) == 4


def test_open_source_reads_memory_maps_and_rejects_small_tomograms(tmp_path):
    even, odd = tmp_path / "e.mrc", tmp_path / "o.mrc"
    rng = np.random.default_rng(0)
    mrcio.write_mrc(even, rng.standard_normal(SHAPE), 10.0)
    mrcio.write_mrc(odd, rng.standard_normal(SHAPE), 10.0)
    src = sampler.open_source("t", (even, odd), MIC, 4, CUBE)
    assert all(isinstance(m, mrcio.MappedVolume) for m in src.maps)   # however small: on disk
    assert src.stats[0] == normalize.normalization_stats(mrcio.read_mrc(even)[0])
    with pytest.raises(ValueError, match=r"tomogram t .* smaller than cube_size 48"):
        sampler.open_source("t", (even, odd), MIC, 4, 48)
    mrcio.write_mrc(odd, np.zeros(SHAPE), 10.0)
    with pytest.raises(ValueError, match="o.mrc"):
        sampler.open_source("t", (even, odd), MIC, 4, CUBE)


def test_box_file_centres_are_the_cubes_of_every_epoch(tmp_path):
    """rlnBoxFile as the IsoNet2 program reads it: x y z per line (first three columns)."""
    even, odd = tmp_path / "e.mrc", tmp_path / "o.mrc"
    mrcio.write_mrc(even, _coordinate_map(), 10.0)
    mrcio.write_mrc(odd, 2.0 * _coordinate_map() + 5.0, 10.0)
    box = tmp_path / "t.coords"
    box.write_text("# x y z\n10 12 9 0.5\n30.0 20 16\n\n24 28 23\n")
    src = sampler.open_source("t", (even, odd), MIC, 999, CUBE, box_path=box)
    assert src.n_subtomos == 3                                  # the box file decides
    expected = {(9, 12, 10), (16, 20, 30), (23, 28, 24)}       # (z, y, x)
    for epoch in (1, 2):
        plan = sampler.epoch_plan([src], CUBE, seed=0, epoch=epoch)
        assert {r.centre for r in plan} == expected and len(plan) == 3
    # the cube cut at a centre is the map there: value z*1e4 + y*100 + x at the cube's centre
    cubes = sampler.load_batch([src], [sampler.CubeRef(0, (9, 12, 10))], CUBE)
    mean, std = src.stats[0]
    assert cubes[0, 0, 8, 8, 8] * std + mean == pytest.approx(9 * 10000 + 12 * 100 + 10, rel=1e-5)


@pytest.mark.parametrize("text, message", [
    ("", "no cube centre"),
    ("10 12\n", "line 1: expected x y z"),
    ("10 12 9\n47 20 16\n", "line 2: a cube of 16 centred at x=47 y=20 z=16 leaves tomogram t"),
])
def test_unusable_box_files_name_file_and_line(tmp_path, text, message):
    box = tmp_path / "bad.coords"
    box.write_text(text)
    with pytest.raises(ValueError, match=message):
        sampler.read_box_file(box, SHAPE, CUBE, "t")


def test_refine_plans_from_the_stars_box_files(tmp_path):
    from isonet2core.config import TrainConfig
    from isonet2core.io import star
    from isonet2core.training.plan import plan_tomograms
    even, odd = tmp_path / "e.mrc", tmp_path / "o.mrc"
    rng = np.random.default_rng(0)
    mrcio.write_mrc(even, rng.standard_normal(SHAPE), 10.0)
    mrcio.write_mrc(odd, rng.standard_normal(SHAPE), 10.0)
    box = tmp_path / "t.coords"
    box.write_text("10 12 9\n30 20 16\n")
    record = {star.TOMO_NAME: "t", star.PIXEL_SIZE: 10.0, star.TOMO_HALF1: str(even),
              star.TOMO_HALF2: str(odd), star.BOX_FILE: str(box), star.N_SUBTOMO: 50}
    table = star.TomogramsTable.from_records([record])
    cfg = TrainConfig(cube_size=16)
    spec, = plan_tomograms(table, [0], cfg)
    assert spec.n_subtomos == 2 and spec.box_file == box
    box.unlink()
    with pytest.raises(FileNotFoundError, match="t.coords"):
        plan_tomograms(table, [0], cfg)
