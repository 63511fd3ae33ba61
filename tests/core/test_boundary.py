"""rlnMaskBoundary: an IMOD model of the lamella outline limits make-mask (the official rule)."""
import numpy as np
import pandas as pd
import pytest

imodmodel = pytest.importorskip("imodmodel")

from isonet2core.cli import main as cli_main  # noqa: E402
from isonet2core.config import MaskConfig  # noqa: E402
from isonet2core.io import boundary, mrcio, star  # noqa: E402
from isonet2core.simulation import simulate
from isonet2core.steps import masking

SQUARE = [(10, 5), (40, 5), (40, 30), (10, 30)]   # x, y of the outline


def write_model(path, points):
    """A closed-contour IMOD model of ``points`` (x, y, z), written by imodmodel's writer."""
    xyz = np.asarray(points, dtype=np.float32)
    frame = pd.DataFrame({"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2]})
    imodmodel.write(frame, path, type=imodmodel.models.ContourType.CLOSED)
    return path


def outline_plane(ny, nx):
    y, x = np.mgrid[:ny, :nx]
    return (x > 10) & (x < 40) & (y > 5) & (y < 30)


def test_points_read_back_in_order(tmp_path):
    pts = [(*p, 12.0) for p in SQUARE] + [(20, 20, 8), (20, 20, 30)]
    read, size = boundary.read_boundary_points(write_model(tmp_path / "b.mod", pts))
    assert np.allclose(read, pts) and size == (0, 0, 0)


def test_last_two_points_give_the_z_range_and_the_rest_the_outline():
    pts = [(*p, 12.0) for p in SQUARE] + [(20, 20, 30.7), (20, 20, 8.2)]   # any order of the z pair
    out = boundary.boundary_mask((40, 50, 60), np.asarray(pts))
    assert out.dtype == np.uint8
    plane = outline_plane(50, 60)
    assert not out[:8].any() and not out[30:].any()
    for z in (8, 20, 29):
        assert out[z][plane].all() and not out[z][~_near_edge(plane)].any()


def _near_edge(plane):
    """The plane grown by one voxel: the polygon's edge voxels may fall either way."""
    from scipy.ndimage import binary_dilation
    return binary_dilation(plane, structure=np.ones((3, 3), bool))


def test_close_last_two_points_keep_every_slice_and_join_the_outline():
    pts = [(*p, 12.0) for p in SQUARE]          # last two z equal: all points are the outline
    out = boundary.boundary_mask((20, 50, 60), np.asarray(pts))
    assert np.array_equal(out[0], out[19]) and out[0][outline_plane(50, 60)].all()
    only_z = boundary.boundary_mask((40, 8, 8), np.asarray([(1, 1, 30), (1, 1, 5)]))
    assert not only_z[:5].any() and only_z[5:30].all() and not only_z[30:].any()


def test_unusable_boundaries_are_refused():
    with pytest.raises(ValueError, match="too few"):
        boundary.boundary_mask((20, 20, 20), np.asarray([(1, 1, 1)]))
    with pytest.raises(ValueError, match="cannot make a polygon"):
        boundary.boundary_mask((40, 20, 20), np.asarray([(1, 1, 1), (5, 5, 1), (1, 1, 2), (1, 1, 30)]))
    with pytest.raises(ValueError, match="keeps no voxel"):
        boundary.boundary_mask((20, 20, 20), np.asarray([(1, 1, 50), (1, 1, 80)]))


def test_make_mask_keeps_the_plain_mask_inside_the_boundary_only(tmp_path):
    sim = simulate.simulate_tomogram(simulate.SimulationConfig(shape=(40, 48, 64)), seed=3)
    full = mrcio.write_mrc(tmp_path / "a.mrc", sim["full"], 10.0)
    pts = [(*p, 20.0) for p in SQUARE] + [(20, 20, 10), (20, 20, 34)]
    model = write_model(tmp_path / "a.mod", pts)
    star_file = tmp_path / "tomograms.star"
    star.TomogramsTable.from_records([{star.TOMO_NAME: "a", star.TOMO_FULL: str(full), star.PIXEL_SIZE: 10.0,
                                       star.MASK_BOUNDARY: "a.mod"}]).write(star_file)   # relative to the STAR
    cfg = ["--density_percentage", "60", "--std_percentage", "80", "--z_crop", "0"]
    assert cli_main.main(["make-mask", str(star_file), "--output_dir", str(tmp_path / "m"), *cfg]) == 0
    data, _ = mrcio.read_mrc(star.TomogramsTable.read(star_file).path(0, star.MASK))
    plain = masking.make_mask(sim["full"], MaskConfig(density_percentage=60, std_percentage=80, z_crop=0))
    region = boundary.boundary_mask(plain.shape, np.asarray(pts))
    assert np.array_equal(data, plain * region)
    assert not data[:10].any() and not data[34:].any()                  # outside the z range
    assert not data[:, ~_near_edge(outline_plane(48, 64))].any()        # outside the outline
    inside = outline_plane(48, 64)
    assert np.array_equal(data[10:34][:, inside], plain[10:34][:, inside])   # the plain mask inside
    assert plain[10:34][:, inside].any() and not plain[:, ~inside].all()
    assert model.exists()


def test_make_mask_refuses_a_missing_or_broken_boundary_before_any_work(tmp_path):
    sim = simulate.simulate_tomogram(simulate.SimulationConfig(shape=(32, 32, 32)), seed=1)
    full = mrcio.write_mrc(tmp_path / "a.mrc", sim["full"], 10.0)
    (tmp_path / "bad.mod").write_text("not a model")
    for cell, message in (("missing.mod", "not found"), ("bad.mod", "not an IMOD model")):
        star_file = tmp_path / f"{cell}.star"
        star.TomogramsTable.from_records([{star.TOMO_NAME: "a", star.TOMO_FULL: str(full), star.PIXEL_SIZE: 10.0,
                                           star.MASK_BOUNDARY: str(tmp_path / cell)}]).write(star_file)
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            masking.mask_star(star_file, MaskConfig(), tmp_path / "m")
        assert not (tmp_path / "m" / "a_mask.mrc").exists()
