"""mrcio: checked headers, float32 reads (whole or z planes) with the voxel size, atomic protected
writes (whole or streamed plane block by plane block) with the header statistics."""
import io
import os
import struct
from pathlib import Path

import mrcfile
import numpy as np
import pytest

from isonet2core.io import mrcio


@pytest.fixture
def volume():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 10, 12)).astype(np.float32)


def _patch(path, offset, fmt, value):
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(struct.pack("<" + fmt, value))


def test_round_trip_keeps_data_shape_and_voxel_size(tmp_path, volume):
    path = mrcio.write_mrc(tmp_path / "a.mrc", volume, 5.4)
    data, voxel = mrcio.read_mrc(path)
    assert data.dtype == np.float32 and data.shape == (6, 10, 12)   # (z, y, x)
    np.testing.assert_array_equal(data, volume)
    assert voxel == 5.4
    info = mrcio.read_header(path)
    assert info.shape == (6, 10, 12) and info.voxel_size_a == 5.4 and info.dtype == np.float32
    mm = mrcio.open_mrc(path)
    np.testing.assert_array_equal(np.asarray(mm[2]), volume[2])


def test_integer_maps_are_read_as_float32(tmp_path):
    ints = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)
    with mrcfile.new(str(tmp_path / "i.mrc")) as mrc:
        mrc.set_data(ints)
        mrc.voxel_size = 2.0
    data, voxel = mrcio.read_mrc(tmp_path / "i.mrc")
    assert data.dtype == np.float32 and voxel == 2.0
    np.testing.assert_array_equal(data, ints.astype(np.float32))


def test_imod_unsigned_bytes(tmp_path):
    values = np.array([0, 100, 200, 255], dtype=np.uint8).reshape(1, 2, 2)
    path = tmp_path / "imod.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(values.view(np.int8))
        mrc.voxel_size = 1.0
    np.testing.assert_array_equal(mrcio.read_mrc(path)[0], values.view(np.int8))   # signed
    _patch(path, 152, "i", mrcio.IMOD_STAMP)                    # IMOD file, bit 0 unset
    _patch(path, 156, "i", 0)
    np.testing.assert_array_equal(mrcio.read_mrc(path)[0], values)                   # unsigned
    _patch(path, 156, "i", 1)                                   # IMOD: signed bytes
    np.testing.assert_array_equal(mrcio.read_mrc(path)[0], values.view(np.int8))


def test_big_endian_maps(tmp_path, volume):
    with mrcfile.new(str(tmp_path / "be.mrc")) as mrc:
        mrc.set_data(volume.astype(">f4"))
        mrc.voxel_size = 3.3
    data, voxel = mrcio.read_mrc(tmp_path / "be.mrc")
    np.testing.assert_array_equal(data, volume)
    assert voxel == 3.3 and data.dtype == np.dtype("=f4")


def test_write_is_atomic_leaves_no_temporary_and_creates_folder(tmp_path, volume):
    target = tmp_path / "sub" / "out.mrc"
    mrcio.write_mrc(target, volume, 1.0)
    mrcio.write_mrc(target, volume * 2, 1.0)            # overwriting an output is allowed
    assert sorted(os.listdir(tmp_path / "sub")) == ["out.mrc"]
    np.testing.assert_array_equal(mrcio.read_mrc(target)[0], volume * 2)


def test_write_refuses_protected_paths_also_through_links(tmp_path, volume):
    src = mrcio.write_mrc(tmp_path / "in.mrc", volume, 1.0)
    before = src.read_bytes()
    with pytest.raises(ValueError, match="in.mrc"):
        mrcio.write_mrc(tmp_path / "." / "in.mrc", volume * 0, 1.0, protect=[src])
    (tmp_path / "link.mrc").symlink_to(src)
    with pytest.raises(ValueError, match="link.mrc"):
        mrcio.write_mrc(tmp_path / "link.mrc", volume * 0, 1.0, protect=[str(src)])
    os.link(src, tmp_path / "hard.mrc")
    with pytest.raises(ValueError, match="hard.mrc"):
        mrcio.write_mrc(tmp_path / "hard.mrc", volume * 0, 1.0, protect=[src])
    assert src.read_bytes() == before
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_write_rejects_bad_input(tmp_path, volume):
    with pytest.raises(ValueError, match="3-D"):
        mrcio.write_mrc(tmp_path / "x.mrc", volume[0], 1.0)
    with pytest.raises(ValueError, match="voxel size"):
        mrcio.write_mrc(tmp_path / "x.mrc", volume, 0.0)
    assert not (tmp_path / "x.mrc").exists()


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.mrc"):
        mrcio.read_header(tmp_path / "nope.mrc")
    with pytest.raises(FileNotFoundError, match="nope.mrc"):
        mrcio.read_mrc(tmp_path / "nope.mrc")


def test_directory_is_not_a_map(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path.name)):
        mrcio.read_header(tmp_path)


def test_not_an_mrc_file(tmp_path):
    short = tmp_path / "short.mrc"
    short.write_bytes(b"hello")
    with pytest.raises(ValueError, match=r"short\.mrc.*1024"):
        mrcio.read_header(short)
    text = tmp_path / "text.mrc"
    text.write_bytes(b"x" * 4096)
    with pytest.raises(ValueError, match=r"text\.mrc.*map ID"):
        mrcio.read_header(text)


def test_bad_mode_and_dimensions(tmp_path, volume):
    path = mrcio.write_mrc(tmp_path / "m.mrc", volume, 1.0)
    _patch(path, 12, "i", 4)                                   # complex64
    with pytest.raises(ValueError, match=r"m\.mrc.*mode 4"):
        mrcio.read_header(path)
    path = mrcio.write_mrc(tmp_path / "d.mrc", volume, 1.0)
    _patch(path, 0, "i", 0)                                    # nx = 0
    with pytest.raises(ValueError, match=r"d\.mrc.*dimensions"):
        mrcio.read_header(path)
    path = mrcio.write_mrc(tmp_path / "n.mrc", volume, 1.0)
    _patch(path, 8, "i", -3)                                   # nz < 0
    with pytest.raises(ValueError, match=r"n\.mrc.*-3"):
        mrcio.read_header(path)


def test_truncated_data(tmp_path, volume):
    path = mrcio.write_mrc(tmp_path / "t.mrc", volume, 1.0)
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(ValueError, match=r"t\.mrc is truncated.*6x10x12.*"
                                         + str(1024 + volume.nbytes)):
        mrcio.read_header(path)
    with pytest.raises(ValueError, match="truncated"):
        mrcio.read_mrc(path)


def test_missing_cell_gives_zero_voxel_size(tmp_path, volume):
    with mrcfile.new(str(tmp_path / "z.mrc")) as mrc:
        mrc.set_data(volume)
        mrc.header.cella = (0, 0, 0)
    assert mrcio.read_header(tmp_path / "z.mrc").voxel_size_a == 0.0


def test_check_finite_and_nonconstant(volume):
    mrcio.check_finite_and_nonconstant(volume, "vol")
    bad = volume.copy()
    bad[0, 0, 0] = np.nan
    bad[1, 1, 1] = np.inf
    with pytest.raises(ValueError, match="even.mrc has 2 NaN or infinite"):
        mrcio.check_finite_and_nonconstant(bad, "even.mrc")
    with pytest.raises(ValueError, match="flat is constant"):
        mrcio.check_finite_and_nonconstant(np.full((4, 4, 4), 3.0), "flat")
    with pytest.raises(ValueError, match="empty"):
        mrcio.check_finite_and_nonconstant(np.zeros((0, 4, 4)), "none")


# --- streamed writes ------------------------------------------------------------------------
def _header_fields(path):
    with mrcfile.open(str(path), header_only=True) as mrc:
        header = mrc.header
        return {name: np.array(header[name]) for name in header.dtype.names if name != "label"}


def _data_bytes(path):
    return path.read_bytes()[mrcio.HEADER_BYTES:]


def test_stream_equals_write_mrc_and_mrcfile(tmp_path):
    """Planes streamed in uneven blocks give the file write_mrc writes for the whole array:
    the same data bytes and header; mrcfile's own writer agrees too (its statistics are
    accumulated in float32, ours in float64: equal to float32 rounding)."""
    vol = np.random.default_rng(5).normal(1e4, 3.0, size=(9, 13, 11)).astype(np.float32)  # mean >> std
    with mrcio.stream_mrc(tmp_path / "s.mrc", vol.shape, 5.4) as out:
        for z0, z1 in ((0, 1), (1, 5), (5, 7), (7, 9)):
            out.write(vol[z0:z1])
    mrcio.write_mrc(tmp_path / "w.mrc", vol, 5.4)
    with mrcfile.new(str(tmp_path / "m.mrc")) as mrc:
        mrc.set_data(vol)
        mrc.voxel_size = 5.4
    assert _data_bytes(tmp_path / "s.mrc") == _data_bytes(tmp_path / "w.mrc") == _data_bytes(tmp_path / "m.mrc")
    streamed, whole, reference = (_header_fields(tmp_path / n) for n in ("s.mrc", "w.mrc", "m.mrc"))
    stats = ("dmin", "dmax", "dmean", "rms")
    for name in streamed:
        np.testing.assert_array_equal(streamed[name], whole[name], err_msg=name)
        if name not in stats:
            np.testing.assert_array_equal(streamed[name], reference[name], err_msg=name)
    exact = vol.astype(np.float64)
    assert streamed["dmin"] == vol.min() and streamed["dmax"] == vol.max()
    assert float(streamed["dmean"]) == pytest.approx(exact.mean(), rel=1e-7)
    assert float(streamed["rms"]) == pytest.approx(exact.std(), rel=1e-6)
    for name in stats:
        assert float(streamed[name]) == pytest.approx(float(reference[name]), rel=1e-5), name
    data, voxel = mrcio.read_mrc(tmp_path / "s.mrc")
    np.testing.assert_array_equal(data, vol)
    assert voxel == 5.4
    assert mrcfile.validate(str(tmp_path / "s.mrc"), print_file=io.StringIO())


def test_stream_failure_leaves_no_file_and_keeps_the_old_one(tmp_path, volume):
    target = tmp_path / "out.mrc"
    with pytest.raises(RuntimeError, match="boom"):
        with mrcio.stream_mrc(target, volume.shape, 1.0) as out:
            out.write(volume[:2])
            raise RuntimeError("boom")
    assert os.listdir(tmp_path) == []
    mrcio.write_mrc(target, volume, 1.0)
    before = target.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with mrcio.stream_mrc(target, volume.shape, 1.0) as out:
            out.write(volume[:3] * 2)
            raise RuntimeError("boom")
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["out.mrc"]


def test_stream_refuses_missing_extra_or_misshaped_planes(tmp_path, volume):
    target = tmp_path / "out.mrc"
    with pytest.raises(ValueError, match=r"out\.mrc: 4 z planes were written, 6 announced"):
        with mrcio.stream_mrc(target, volume.shape, 1.0) as out:
            out.write(volume[:4])
    with pytest.raises(ValueError, match="7 z planes would exceed the announced 6"):
        with mrcio.stream_mrc(target, volume.shape, 1.0) as out:
            out.write(volume)
            out.write(volume[:1])
    with pytest.raises(ValueError, match=r"expected z planes \(k, 10, 12\)"):
        with mrcio.stream_mrc(target, volume.shape, 1.0) as out:
            out.write(volume[:, :5])
    with pytest.raises(ValueError, match="3-D"):
        with mrcio.stream_mrc(target, (0, 10, 12), 1.0):
            pass
    src = mrcio.write_mrc(tmp_path / "in.mrc", volume, 1.0)
    with pytest.raises(ValueError, match="in.mrc"):
        with mrcio.stream_mrc(src, volume.shape, 1.0, protect=[src]):
            pass
    assert os.listdir(tmp_path) == ["in.mrc"]


def test_blocks_placed_in_any_order_give_the_streamed_file(tmp_path):
    """Rows of planes written where they belong, bands out of order: the same data bytes and
    header fields as the planes streamed in order, statistics equal to float64 rounding."""
    vol = np.random.default_rng(8).normal(3.0, 2.0, size=(9, 13, 11)).astype(np.float32)
    mrcio.write_mrc(tmp_path / "w.mrc", vol, 5.4)
    blocks = [(z0, y0, y1) for y0, y1 in ((5, 13), (0, 2), (2, 5)) for z0 in (4, 0, 7)]
    depth = {0: 4, 4: 3, 7: 2}
    with mrcio.stream_mrc(tmp_path / "b.mrc", vol.shape, 5.4) as out:
        for z0, y0, y1 in blocks:
            out.write_block(z0, y0, vol[z0:z0 + depth[z0], y0:y1])
    assert _data_bytes(tmp_path / "b.mrc") == _data_bytes(tmp_path / "w.mrc")
    placed, whole = (_header_fields(tmp_path / n) for n in ("b.mrc", "w.mrc"))
    for name in placed:
        if name in ("dmean", "rms"):
            assert float(placed[name]) == pytest.approx(float(whole[name]), rel=1e-6), name
        else:
            np.testing.assert_array_equal(placed[name], whole[name], err_msg=name)
    assert mrcfile.validate(str(tmp_path / "b.mrc"), print_file=io.StringIO())


def test_blocks_refused_outside_the_volume_missing_or_mixed_with_planes(tmp_path, volume):
    target = tmp_path / "out.mrc"
    with pytest.raises(ValueError, match=r"out\.mrc: 60 voxels were written in blocks, 720 announced"):
        with mrcio.stream_mrc(target, volume.shape, 1.0) as out:
            out.write_block(1, 2, volume[1:2, 2:7])
    with pytest.raises(ValueError, match=r"a block of shape \(2, 5, 12\) at z 5, y 0 does not fit"):
        with mrcio.stream_mrc(target, volume.shape, 1.0) as out:
            out.write_block(5, 0, volume[:2, :5])
    with pytest.raises(ValueError, match="blocks cannot be placed as well"):
        with mrcio.stream_mrc(target, volume.shape, 1.0) as out:
            out.write(volume[:1])
            out.write_block(1, 0, volume[1:2])
    with pytest.raises(ValueError, match="planes cannot be appended as well"):
        with mrcio.stream_mrc(target, volume.shape, 1.0) as out:
            out.write_block(0, 0, volume[:1])
            out.write(volume[1:2])
    assert os.listdir(tmp_path) == []


# --- plane reads ----------------------------------------------------------------------------
def test_plane_reader_reads_z_slices_as_float32(tmp_path, volume):
    path = mrcio.write_mrc(tmp_path / "a.mrc", volume, 1.0)
    reader = mrcio.open_planes(path)
    assert reader.shape == (6, 10, 12) and len(reader) == 6 and reader.dtype == np.float32
    np.testing.assert_array_equal(reader[2:5], volume[2:5])
    np.testing.assert_array_equal(reader[4:99], volume[4:])       # clipped like numpy
    np.testing.assert_array_equal(reader[:], volume)
    assert reader[3:3].shape == (0, 10, 12)
    np.testing.assert_array_equal(reader[1:4, 2:7], volume[1:4, 2:7])     # rows of planes
    np.testing.assert_array_equal(reader[5:9, 8:20], volume[5:, 8:])
    assert reader[2:4, 3:3].shape == (2, 0, 12)
    with pytest.raises(ValueError, match="step 2"):
        reader[::2]
    with pytest.raises(ValueError, match="step 3"):
        reader[0:2, ::3]
    with pytest.raises(TypeError, match="slice"):
        reader[1]
    ints = np.arange(4 * 3 * 5, dtype=np.int16).reshape(4, 3, 5)   # stored int16, big-endian
    with mrcfile.new(str(tmp_path / "i.mrc")) as mrc:
        mrc.set_data(ints.astype(">i2"))
    block = mrcio.open_planes(tmp_path / "i.mrc")[1:3]
    assert block.dtype == np.float32
    np.testing.assert_array_equal(block, ints[1:3])
    np.testing.assert_array_equal(mrcio.open_planes(tmp_path / "i.mrc")[1:4, 1:2], ints[1:4, 1:2])
    path.write_bytes(path.read_bytes()[:-200])                     # truncated after opening
    with pytest.raises(ValueError, match=r"a\.mrc is truncated"):
        reader[4:6]
    with pytest.raises(ValueError, match=r"a\.mrc is truncated"):
        reader[4:6, 0:9]


# --- memory maps: every mode, regions as float32, bounded open maps -------------------------
def _mapped_rss_kib(path):
    """Resident KiB of this process's mappings of ``path`` (``/proc/self/smaps``)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:   # a mapping's line
            inside = len(fields) > 5 and fields[5] == str(path)
        elif inside and line.startswith("Rss:"):
            total += int(fields[1])
    return total


@pytest.mark.parametrize("stored", ["i1", "<f2", ">f2", "<i2", ">u2", ">f4"])
def test_memory_maps_read_every_mode_in_place(tmp_path, stored):
    values = np.arange(-60, 60, dtype=np.float32).reshape(4, 5, 6) * (0.5 if "f" in stored else 1)
    if stored == ">u2":
        values = values + 60
    path = tmp_path / "m.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(values.astype(stored))       # mode 0, 12, 12, 1, 6, 2
        mrc.voxel_size = 2.0
    mm = mrcio.open_mrc(path)
    assert mm.dtype == np.dtype(stored) and mm.shape == (4, 5, 6)
    np.testing.assert_array_equal(np.asarray(mm, dtype=np.float32), values)
    vol = mrcio.open_mapped(path)
    assert vol.shape == (4, 5, 6) and vol.dtype == np.float32 and len(vol) == 4
    cube = vol[1:3, 2:5, 0:4]
    assert cube.dtype == np.float32 and cube.flags.owndata          # a copy, not a view of the map
    np.testing.assert_array_equal(cube, values[1:3, 2:5, 0:4])
    np.testing.assert_array_equal(vol[2, 3, 1:6:2], values[2, 3, 1:6:2])   # a strided row
    assert vol[3, 4, 5] == values[3, 4, 5] and vol[-1, -2, -3] == values[-1, -2, -3]
    assert vol[3, 4, 5].shape == ()
    np.testing.assert_array_equal(vol[::-1, 1], values[::-1, 1])
    with pytest.raises(IndexError, match=r"m\.mrc: voxel \(4, 0, 0\)"):
        vol[4, 0, 0]


def test_memory_maps_of_imod_unsigned_bytes(tmp_path):
    values = np.array([0, 100, 200, 255], dtype=np.uint8).reshape(1, 2, 2)
    path = tmp_path / "imod.mrc"
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(values.view(np.int8))
    _patch(path, 152, "i", mrcio.IMOD_STAMP)
    _patch(path, 156, "i", 0)
    np.testing.assert_array_equal(mrcio.open_mrc(path), values)
    np.testing.assert_array_equal(mrcio.open_mapped(path)[0], values[0].astype(np.float32))


def test_mapped_volumes_keep_few_maps_open(tmp_path, monkeypatch):
    monkeypatch.setattr(mrcio, "MAX_OPEN_MAPS", 2)
    monkeypatch.setattr(mrcio, "_open_maps", type(mrcio._open_maps)())
    volumes, data = [], []
    for i in range(5):
        data.append(np.full((3, 4, 5), i, dtype=np.float32) + np.arange(5, dtype=np.float32))
        volumes.append(mrcio.open_mapped(mrcio.write_mrc(tmp_path / f"{i}.mrc", data[-1], 1.0)))
    for _ in range(2):
        for vol, values in zip(volumes, data):
            np.testing.assert_array_equal(vol[1:3, 0:2], values[1:3, 0:2])   # reopened as needed
            assert len(mrcio._open_maps) <= 2
    assert set(mrcio._open_maps) == {volumes[3]._token, volumes[4]._token}
    del volumes[4], vol
    assert set(mrcio._open_maps) == {volumes[3]._token}          # a forgotten volume closes its map


def test_a_map_cut_short_after_its_header_was_read(tmp_path, volume):
    path = mrcio.write_mrc(tmp_path / "a.mrc", volume, 1.0)
    vol = mrcio.open_mapped(path)
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(ValueError, match=r"a\.mrc: .* bytes, but its header announces \(6, 10, 12\)"):
        vol[0:2]


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps") or mrcio._MADV_DONTNEED is None,
                    reason="needs Linux's /proc/self/smaps and madvise")
def test_mapped_reads_give_their_pages_back(tmp_path):
    shape = (32, 256, 256)                                   # 8 MiB of float32
    path = mrcio.write_mrc(tmp_path / "big.mrc", np.ones(shape, dtype=np.float32), 1.0).resolve()
    vol = mrcio.open_mapped(path)
    for z in range(0, 32, 16):
        for y in range(0, 256, 32):
            for x in range(0, 256, 32):
                assert vol[z:z + 16, y:y + 32, x:x + 32].sum() == 16 * 32 * 32
    assert _mapped_rss_kib(path) < 1024                      # not the 8 MiB the reads touched
    mm = mrcio.open_mrc(path)                                # a plain memory map keeps them
    assert float(np.asarray(mm[:, ::8, ::8], dtype=np.float64).sum()) == 32 * 32 * 32
    assert _mapped_rss_kib(path) > 4096
