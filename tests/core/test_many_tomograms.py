"""Training on many tomograms in bounded memory (issue 30): the sampler keeps every map and mask
on disk, so opening 50 tomograms and loading an epoch of their cubes takes no more memory than
2 do, and cubes are cut from every tomogram; maps stored as float16 or int8 load the cubes of
the float32 map."""
import tracemalloc

import mrcfile
import numpy as np
import pytest

from isonet2core.config import Microscope
from isonet2core.io import mrcio
from isonet2core.training import sampler

SHAPE = (32, 96, 96)            # one float32 map: 1.125 MiB
MAP_BYTES = 4 * int(np.prod(SHAPE))
CUBE, PER_TOMOGRAM, BATCH = 16, 8, 8
MIC = Microscope(pixel_size_a=10.0)
# what 48 more tomograms may add to the peak: their bookkeeping (sources, the masks' row counts,
# the epoch's plan: about 0.5 MiB here) but not one map (MAP_BYTES), let alone their 96 maps
# and 48 masks (about 160 MiB, what loading them took before issue 30)
MARGIN_BYTES = 1024 * 1024


def _write_tomograms(folder, count):
    """``count`` even/odd pairs of random float32 maps and int8 masks (mode 0) on disk."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    mask = np.zeros(SHAPE, dtype=np.int8)
    mask[6:26, 10:80, 20:90] = 1
    tomograms = []
    for i in range(count):
        even = mrcio.write_mrc(folder / f"t{i}_even.mrc", rng.standard_normal(SHAPE, dtype=np.float32), 10.0)
        odd = mrcio.write_mrc(folder / f"t{i}_odd.mrc", rng.standard_normal(SHAPE, dtype=np.float32), 10.0)
        with mrcfile.new(str(folder / f"t{i}_mask.mrc")) as mrc:
            mrc.set_data(mask)
        tomograms.append((f"t{i}", (even, odd), folder / f"t{i}_mask.mrc"))
    return tomograms


def _one_epoch(tomograms):
    """Open the sources, plan one epoch and load all its batches, as the trainer does; return the
    peak traced memory above the start (bytes) and, per cube, its tomogram, centre and the
    normalised even value at its centre."""
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    sources = [sampler.open_source(name, paths, MIC, PER_TOMOGRAM, CUBE, mask_path=mask)
               for name, paths, mask in tomograms]
    plan = sampler.epoch_plan(sources, CUBE, seed=0, epoch=1)
    seen = []
    for refs in sampler.batches(plan, BATCH):
        cubes = sampler.load_batch(sources, refs, CUBE)
        assert cubes.shape == (2, BATCH, CUBE, CUBE, CUBE) and np.isfinite(cubes).all()
        seen += [(r.source, r.centre, float(cubes[0, j, CUBE // 2, CUBE // 2, CUBE // 2]))
                 for j, r in enumerate(refs)]
    peak = tracemalloc.get_traced_memory()[1] - start
    tracemalloc.stop()
    return peak, seen, [s.stats[0] for s in sources]


def test_fifty_tomograms_train_in_the_memory_of_two(tmp_path):
    many = _write_tomograms(tmp_path / "many", 50)
    _one_epoch(many[:2])                                       # warm-up: lazy imports, caches
    peak_two, _, _ = _one_epoch(many[:2])
    peak_fifty, seen, stats = _one_epoch(many)
    assert peak_fifty <= peak_two + MARGIN_BYTES, (peak_two, peak_fifty)
    assert MARGIN_BYTES < MAP_BYTES
    # every tomogram gives its cubes, mixed in the batches, each cut where the plan says
    assert {source for source, _, _ in seen} == set(range(50)) and len(seen) == 50 * PER_TOMOGRAM
    first_batch = {source for source, _, _ in seen[:BATCH]}
    assert len(first_batch) > 1
    for source, (z, y, x), value in seen[::7]:
        even = mrcio.read_mrc(many[source][1][0])[0]
        mean, std = stats[source]
        assert value == pytest.approx((even[z, y, x] - mean) / std, rel=1e-5, abs=1e-6)
        assert 6 <= z < 26 and 10 <= y < 80 and 20 <= x < 90   # inside the mask


def _stored_as(path, values, dtype):
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(values.astype(dtype))       # int8: mode 0, float16: mode 12, float32: mode 2
        mrc.voxel_size = 10.0
    return path


@pytest.mark.parametrize("integers", [True, False])
def test_float16_and_int8_maps_load_the_cubes_of_the_float32_map(tmp_path, integers):
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((40, 48, 48))
    smooth = sum(np.roll(noise, s, axis=a) for a in range(3) for s in (-1, 0, 1))   # correlated
    values = np.round(4 * smooth) if integers else 3 * smooth    # integers: exact in all modes
    mask = _stored_as(tmp_path / "mask.mrc", (np.abs(smooth) < 2).astype(np.int8), np.int8)
    kinds = {"float32": np.float32, "float16": np.float16}
    if integers:
        assert np.abs(values).max() < 127
        kinds["int8"] = np.int8
    loaded = {}
    for kind, dtype in kinds.items():
        path = _stored_as(tmp_path / f"{kind}.mrc", values, dtype)
        assert mrcio.read_header(path).dtype == np.dtype(dtype)
        src = sampler.open_source(kind, (path,), MIC, 24, CUBE, mask_path=mask)
        plan = sampler.epoch_plan([src], CUBE, seed=7, epoch=2)
        loaded[kind] = (plan, np.concatenate([sampler.load_batch([src], refs, CUBE)
                                              for refs in sampler.batches(plan, 6)], axis=1))
    reference_plan, reference = loaded.pop("float32")
    assert reference.dtype == np.float32 and reference.shape == (1, 24, CUBE, CUBE, CUBE)
    for kind, (plan, cubes) in loaded.items():
        assert plan == reference_plan                            # the same cubes, the same order
        assert cubes.dtype == np.float32
        # float16 keeps 11 significant bits: normalised values within 2^-11 of the largest
        tolerance = 1e-6 if integers else 2.0 ** -11 * float(np.abs(reference).max())
        np.testing.assert_allclose(cubes, reference, rtol=0, atol=tolerance, err_msg=kind)
