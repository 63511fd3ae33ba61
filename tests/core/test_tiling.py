"""Overlap tiles: coverage, reflection, exact identity stitching, bounded batches, planes
handed out in z order from a rolling buffer, one slab read per z-row."""
import numpy as np
import pytest

from isonet2core.steps import tiling


def _stitch(volume, cube, padding_factor, batch_size, fn=lambda t: t, scheme="hann"):
    """Tile, apply ``fn``, blend; assemble the handed-out planes, checking that they come in
    increasing z, each once, in blocks of at most ``cube`` planes."""
    grid = tiling.TileGrid.for_volume(volume.shape, cube, padding_factor, scheme)
    acc = tiling.TileAccumulator(grid)
    out = np.full(volume.shape, np.nan, np.float32)
    next_z = 0

    def take(planes):
        nonlocal next_z
        for z0, block in planes:
            assert z0 == next_z and 1 <= len(block) <= cube and block.dtype == np.float32
            assert block.shape[1:] == volume.shape[1:]
            out[z0:z0 + len(block)] = block
            next_z += len(block)

    for tiles, starts in tiling.iter_tile_batches(volume, grid, batch_size):
        assert tiles.shape[1:] == (cube, cube, cube) and tiles.dtype == np.float32
        assert len(tiles) <= batch_size
        take(acc.add(fn(tiles), starts))
    take(acc.finish())
    assert next_z == volume.shape[0]
    return out, grid


def test_spacing_and_starts():
    assert tiling.tile_spacing(96, 1.5) == 64
    assert tiling.tile_spacing(32, 1.0) == 32
    assert tiling.tile_spacing(16, 4.0) == 4
    # cube 96, spacing 64: margin 16 outside each face, 4 tiles spread evenly over [-16, 216)
    assert tiling.axis_starts(200, 96, 64) == [-16, 29, 75, 120]
    assert tiling.axis_starts(192, 96, 64) == [-16, 48, 112]
    # no overlap, exact multiple: plain partition
    assert tiling.axis_starts(64, 32, 32) == [0, 32]
    # shorter than the cube: one centred tile
    assert tiling.axis_starts(10, 32, 21) == [-11]
    with pytest.raises(ValueError, match="padding_factor"):
        tiling.tile_spacing(32, 0.5)


@pytest.mark.parametrize("shape,cube,pf", [((37, 70, 53), 32, 1.5),
                                           ((37, 70, 53), 16, 1.0),
                                           ((5, 20, 9), 16, 1.5),    # smaller than the cube in z and x
                                           ((1, 3, 2), 16, 2.0),     # tiny in every axis
                                           ((48, 32, 64), 16, 3.0)])
def test_identity_network_stitches_back_exactly(shape, cube, pf):
    rng = np.random.default_rng(sum(shape))
    vol = rng.normal(3.0, 2.0, size=shape).astype(np.float32)
    out, grid = _stitch(vol, cube, pf, batch_size=3)
    assert out.shape == shape and out.dtype == np.float32
    np.testing.assert_allclose(out, vol, atol=1e-5, rtol=0)
    # every voxel was covered and the blending denominator is positive
    assert all((w > 0).all() for w in grid.weight_sums())


def test_a_linear_tile_operation_commutes_with_stitching():
    """A tile-wise operation that is local (x -> 2x + 1) gives the same as on the whole volume."""
    vol = np.random.default_rng(1).normal(size=(20, 30, 41)).astype(np.float32)
    out, _ = _stitch(vol, 16, 1.5, batch_size=4, fn=lambda t: 2 * t + 1)
    np.testing.assert_allclose(out, 2 * vol + 1, atol=1e-5)


def test_reflection_and_blending_of_differing_tiles():
    vol = np.arange(10, dtype=np.float32)[None, None, :] * np.ones((1, 1, 1), np.float32)
    grid = tiling.TileGrid.for_volume(vol.shape, 16, 1.0)
    assert grid.starts == ((-7,), (-7,), (-3,))
    (tile,), _ = next(tiling.iter_tile_batches(vol, grid, 1))
    # x: -3..12 mirrored into 0..9 without repeating the edge: 3 2 1 0 1 ... 9 8 7 6
    assert tile[0, 0].tolist() == [3, 2, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 8, 7, 6]
    # tiles that disagree are blended into a smooth transition, not a seam:
    # each tile output is constant = its x start; the result lies between neighbouring starts
    vol = np.zeros((16, 16, 80), np.float32)
    grid = tiling.TileGrid.for_volume(vol.shape, 16, 2.0)
    acc = tiling.TileAccumulator(grid)
    planes = []
    for tiles, starts in tiling.iter_tile_batches(vol, grid, 2):
        planes += acc.add(np.stack([np.full_like(t, s[2]) for t, s in zip(tiles, starts)]), starts)
    planes += acc.finish()
    line = np.concatenate([p for _, p in planes])[8, 8]
    assert np.all(np.diff(line) >= -1e-4)                 # monotone
    assert np.abs(np.diff(line)).max() < 8 * 0.5          # no step as large as the spacing


class _CountingVolume:
    """A ``(z, y, x)`` volume that records the z slices read from it."""

    def __init__(self, array):
        self.array, self.shape, self.reads = array, array.shape, []

    def __getitem__(self, index):
        assert isinstance(index, slice)
        self.reads.append((index.start, index.stop))
        return self.array[index]


def test_one_slab_read_per_z_row_and_a_rolling_buffer():
    vol = np.random.default_rng(3).normal(size=(70, 21, 19)).astype(np.float32)
    counting = _CountingVolume(vol)
    grid = tiling.TileGrid.for_volume(vol.shape, 16, 1.5)
    acc = tiling.TileAccumulator(grid)
    out, buffered = [], []
    for tiles, starts in tiling.iter_tile_batches(counting, grid, 5):
        out += acc.add(tiles, starts)
        buffered.append(len(acc._buffer))
    out += acc.finish()
    # one read per z-row, each at most a cube of planes (reflected at the faces)
    assert len(counting.reads) == len(grid.starts[0])
    assert all(0 < b - a <= 16 for a, b in counting.reads)
    # the rolling buffer never holds more than the planes of one z-row of tiles
    assert max(buffered) <= 16
    np.testing.assert_allclose(np.concatenate([p for _, p in out]), vol, atol=1e-5)
    assert [z0 for z0, _ in out] == sorted(z0 for z0, _ in out)


def test_tiles_out_of_order_or_missing_are_refused():
    vol = np.random.default_rng(4).normal(size=(40, 16, 16)).astype(np.float32)
    grid = tiling.TileGrid.for_volume(vol.shape, 16, 1.0)   # z-rows at 0, 12, 24
    batches = list(tiling.iter_tile_batches(vol, grid, 1))
    acc = tiling.TileAccumulator(grid)
    acc.add(*batches[0])
    with pytest.raises(ValueError, match="z-row by z-row"):
        acc.add(*batches[-1])
    acc = tiling.TileAccumulator(grid)
    for tiles, starts in batches[:-1]:
        acc.add(tiles, starts)
    with pytest.raises(RuntimeError, match=f"{len(batches) - 1} of the grid's {len(batches)} tiles"):
        acc.finish()


def test_memmap_input_and_errors(tmp_path):
    vol = np.random.default_rng(2).normal(size=(17, 33, 18)).astype(np.float32)
    np.save(tmp_path / "v.npy", vol)
    mm = np.load(tmp_path / "v.npy", mmap_mode="r")
    out, _ = _stitch(mm, 16, 1.5, batch_size=8)
    np.testing.assert_allclose(out, vol, atol=1e-5)
    grid = tiling.TileGrid.for_volume((4, 4, 4), 16, 1.5)
    with pytest.raises(ValueError, match="does not match"):
        next(tiling.iter_tile_batches(vol, grid, 2))
    with pytest.raises(ValueError, match="shape"):
        tiling.TileGrid.for_volume((0, 4, 4), 16, 1.5)


def _program_reference(volume, cube, padding_factor, fn):
    """The IsoNet2 program's tiling as its predict documents it, written out independently:
    pad (numpy 'symmetric'), cut cubes at stride s, keep the central s + 2e of each output,
    weight by linear ramps of 2e, sum, crop (no division)."""
    e, s = 5, int(cube / padding_factor + 0.1)
    n = np.array(volume.shape)
    side = np.ceil((n + 2 * e) / s).astype(int)
    left = (cube - s) // 2 + e
    right = side * s + (cube - s) - left - n
    padded = np.pad(volume, [(left, r) for r in right], "symmetric")
    length, p = s + 2 * e, 2 * e
    ramp = np.minimum(np.arange(length + 1), p) / p
    ramp = (ramp * ramp[::-1])[:length]
    mask = ramp[:, None, None] * ramp[None, :, None] * ramp[None, None, :]
    out = np.zeros(tuple(side * s + 2 * e))
    a = (cube - s) // 2 - e
    for i in range(side[0]):
        for j in range(side[1]):
            for k in range(side[2]):
                tile = fn(padded[i * s:i * s + cube, j * s:j * s + cube, k * s:k * s + cube][None])[0]
                out[i * s:i * s + length, j * s:j * s + length, k * s:k * s + length] += \
                    tile[a:a + length, a:a + length, a:a + length] * mask
    return out[p:p + n[0], p:p + n[1], p:p + n[2]]


@pytest.mark.parametrize("shape,cube", [((37, 70, 53), 32), ((20, 30, 41), 48), ((3, 5, 4), 32)])
def test_program_scheme_is_the_isonet2_program_tiling(shape, cube):
    """Scheme ``isonet2-program`` (models of the IsoNet2 program): the program's tiles, ramps and
    padding; a non-local tile operation (each tile minus its own mean, times a ramp in z) gives
    what the program's scheme gives, and the identity gives the input back."""
    vol = np.random.default_rng(2).normal(size=shape).astype(np.float32)

    def fn(t):
        return (t - t.mean(axis=(1, 2, 3), keepdims=True)) * np.linspace(0.5, 1.5, t.shape[1])[None, :, None, None]

    out, grid = _stitch(vol, cube, 1.5, batch_size=5, fn=lambda t: fn(t).astype(np.float32),
                        scheme="isonet2-program")
    np.testing.assert_allclose(out, _program_reference(vol.astype(np.float64), cube, 1.5, fn), atol=1e-4)
    assert all(np.allclose(w, 1.0) for w in grid.weight_sums())     # the ramps sum to 1
    same, _ = _stitch(vol, cube, 1.5, batch_size=5, scheme="isonet2-program")
    np.testing.assert_allclose(same, vol, atol=1e-5)
    with pytest.raises(ValueError, match="tiling scheme"):
        tiling.TileGrid.for_volume(shape, cube, 1.5, "gaussian")
    with pytest.raises(ValueError, match="spacing"):
        tiling.TileGrid.for_volume(shape, 16, 1.5, "isonet2-program")
    assert tiling.program_scheme_fits(cube, 1.5)
    assert not tiling.program_scheme_fits(16, 1.5) and not tiling.program_scheme_fits(32, 1.0)


def _stitch_bands(volume, cube, padding_factor, batch_size, bands, fn, scheme="hann"):
    """Tile and blend band by band; every voxel must be handed out exactly once."""
    grid = tiling.TileGrid.for_volume(volume.shape, cube, padding_factor, scheme)
    out = np.full(volume.shape, np.nan, np.float32)
    for y0, y1 in bands:
        acc = tiling.TileAccumulator(grid, (y0, y1))
        blocks = []
        for tiles, starts in tiling.iter_tile_batches(volume, grid, batch_size, (y0, y1)):
            assert all(s[1] < y1 and s[1] + cube > y0 for s in starts)   # only tiles touching the band
            blocks += acc.add(fn(tiles), starts)
        blocks += acc.finish()
        assert [z0 for z0, _ in blocks] == list(np.cumsum([0] + [len(b) for _, b in blocks[:-1]]))
        for z0, block in blocks:
            assert block.shape[1:] == (y1 - y0, volume.shape[2])
            assert np.isnan(out[z0:z0 + len(block), y0:y1]).all()
            out[z0:z0 + len(block), y0:y1] = block
    assert not np.isnan(out).any()
    return out


@pytest.mark.parametrize("scheme,cube,pf", [("hann", 16, 1.5), ("hann", 16, 3.0), ("isonet2-program", 32, 1.5)])
def test_bands_of_rows_blend_every_voxel_exactly_as_whole_planes(scheme, cube, pf):
    """The same tiles in the same order: bands give the whole-plane result bit for bit, for a
    tile operation that is not local (each tile's output depends on all of it)."""
    vol = np.random.default_rng(5).normal(size=(21, 75, 23)).astype(np.float32)
    fn = lambda t: np.tanh(t) * t.mean(axis=(1, 2, 3), keepdims=True) + t[:, ::-1]   # noqa: E731
    whole, grid = _stitch(vol, cube, pf, 4, fn, scheme)
    cuts = tiling.plan_bands(grid, tiling.band_bytes(grid, 25))
    assert len(cuts) > 2
    for bands in (cuts, [(0, 1), (1, 40), (40, 75)], [(0, 75)]):
        np.testing.assert_array_equal(_stitch_bands(vol, cube, pf, 3, bands, fn, scheme), whole)


def test_band_reads_only_its_rows():
    vol = np.random.default_rng(6).normal(size=(20, 200, 17)).astype(np.float32)
    grid = tiling.TileGrid.for_volume(vol.shape, 16, 1.5)
    reads = []

    class Rows:
        shape = vol.shape

        def __getitem__(self, index):
            reads.append(index)
            return vol[index]

    list(tiling.iter_tile_batches(Rows(), grid, 4, (100, 140)))
    assert reads and all(isinstance(r, tuple) for r in reads)
    assert all(100 - 16 < r[1].start and r[1].stop < 140 + 16 for r in reads)


def test_plan_bands():
    grid = tiling.TileGrid.for_volume((40, 1000, 300), 48, 1.5)     # spacing 32
    whole = tiling.band_bytes(grid, 1000)
    assert whole == 4 * 48 * 300 * (1096 + 2000)
    assert tiling.plan_bands(grid, whole) == [(0, 1000)]
    assert tiling.plan_bands(grid, None) == [(0, 1000)]             # within BAND_BYTES
    budget = tiling.band_bytes(grid, 300)
    bands = tiling.plan_bands(grid, budget)
    assert bands[0][0] == 0 and bands[-1][1] == 1000 and len(bands) >= 4
    assert all(a[1] == b[0] for a, b in zip(bands, bands[1:]))      # contiguous, in order
    assert all(tiling.band_bytes(grid, y1 - y0) <= budget for y0, y1 in bands)
    centres = {s + 24 for s in grid.starts[1]}
    assert all(y1 in centres for _, y1 in bands[:-1])                # cut at tile centres
    # the mean of two maps holds a second input slab: more, narrower bands within one budget
    assert tiling.band_bytes(grid, 1000, input_slabs=2) == 4 * 48 * 300 * (2 * 1096 + 2000)
    two = tiling.plan_bands(grid, budget, input_slabs=2)
    assert len(two) > len(bands) and two[-1][1] == 1000
    assert all(tiling.band_bytes(grid, y1 - y0, input_slabs=2) <= budget for y0, y1 in two)
    # each cut is straddled by one row of tiles: the bands hold one more row than the grid per cut
    rows = sum(len(grid.band_y_starts(b)) for b in bands)
    assert rows == len(grid.starts[1]) + len(bands) - 1
    with pytest.raises(ValueError, match=r"tomo_7: predicting its 40x1000x300 .* bands of 32 rows "
                                         r"needs at least .* memory budget memory_gb 0.01 leaves 1.0 KiB"):
        tiling.plan_bands(grid, 1024, name="tomo_7", budget="memory_gb 0.01")
    with pytest.raises(ValueError, match="band rows"):
        grid.band_y_starts((10, 10))
