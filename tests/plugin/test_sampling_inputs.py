"""Mask boundaries matched by tsId, and Scipion 3D coordinates as the core's box files
(isonet2scipion.sampling_inputs), on tomo's own classes."""
import mrcfile
import numpy as np
import pytest
from scipion_objects import acquisition, convert_step, protocol, tomogram_set
from tomo import constants
from tomo.objects import Coordinate3D, SetOfCoordinates3D, SetOfTomograms, Tomogram

from isonet2core.io import star
from isonet2scipion import sampling_inputs

CUBE = 16


def _tomogram(tmp_path, ts_id, shape_zyx, sampling):
    path = tmp_path / f"{ts_id}_{sampling:g}.mrc"
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(np.random.default_rng(0).normal(size=shape_zyx).astype(np.float32))
        m.voxel_size = sampling
    tomo = Tomogram(tsId=ts_id)
    tomo.setLocation(str(path))
    tomo.setSamplingRate(sampling)
    return tomo


def _coordinates(tmp_path, tomos, positions_blc, sampling, name="coords"):
    """A SetOfCoordinates3D: ``positions_blc[i] = (tomogram index, x, y, z)`` given from the
    tomogram's bottom left corner (tomo's ``BOTTOM_LEFT_CORNER``), as pickers register them."""
    tomo_set = SetOfTomograms(filename=str(tmp_path / f"{name}_tomos.sqlite"))
    tomo_set.setSamplingRate(sampling)
    for tomo in tomos:
        tomo_set.append(tomo)
    tomo_set.write()
    coord_set = SetOfCoordinates3D(filename=str(tmp_path / f"{name}.sqlite"))
    coord_set.setSamplingRate(sampling)
    coord_set.setBoxSize(CUBE)
    coord_set.setPrecedents(tomo_set)
    for index, x, y, z in positions_blc:
        coord = Coordinate3D()
        coord.setVolume(tomos[index])
        coord.setPosition(x, y, z, constants.BOTTOM_LEFT_CORNER)
        coord_set.append(coord)
    coord_set.write()
    return coord_set


# ------------------------------------------------------------------ mask boundaries
def test_model_files_are_matched_by_ts_id_longest_first():
    ids = ["TS_1", "TS_10", "TS_1_2"]
    assert sampling_inputs.ts_id_of_file("TS_1", ids) == "TS_1"
    assert sampling_inputs.ts_id_of_file("TS_10_boundary", ids) == "TS_10"
    assert sampling_inputs.ts_id_of_file("TS_1_2_lamella", ids) == "TS_1_2"
    assert sampling_inputs.ts_id_of_file("TS_1.rec", ids) == "TS_1"
    assert sampling_inputs.ts_id_of_file("TS_100", ids) is None
    assert sampling_inputs.ts_id_of_file("other", ids) is None


def test_boundary_folder_gives_star_cells_and_names_its_problems(tmp_path):
    for name in ("TS_01_boundary.mod", "TS_02.mod", "notes.txt", "unrelated.mod"):
        (tmp_path / name).write_bytes(b"IMOD")
    paths, errors = sampling_inputs.boundary_files(str(tmp_path), ["TS_01", "TS_02", "TS_03"])
    assert errors == []
    assert paths == {"TS_01": str(tmp_path / "TS_01_boundary.mod"), "TS_02": str(tmp_path / "TS_02.mod")}
    assert sampling_inputs.boundary_columns(paths)["TS_02"] == {star.MASK_BOUNDARY: str(tmp_path / "TS_02.mod")}
    (tmp_path / "TS_02_other.mod").write_bytes(b"IMOD")
    assert "several mask boundaries" in sampling_inputs.boundary_files(str(tmp_path), ["TS_02"])[1][0]
    assert "named after a tomogram" in sampling_inputs.boundary_files(str(tmp_path), ["X"])[1][0]
    assert "does not exist" in sampling_inputs.boundary_files(str(tmp_path / "no"), ["X"])[1][0]
    assert sampling_inputs.boundary_files(None, ["X"]) == ({}, [])


# ------------------------------------------------------------------ subtomogram centres
def test_coordinates_become_voxel_centres_the_core_reads(tmp_path):
    from isonet2core.training.sampler import read_box_file

    tomo = _tomogram(tmp_path, "TS_01", (40, 64, 80), 10.0)       # x 80, y 64, z 40
    known = [(0, 30, 20, 15), (0, 41.4, 33.6, 20.2), (0, 50, 40, 25)]
    coords = _coordinates(tmp_path, [tomo], known, 10.0)
    # stored by tomo relative to the tomogram's centre: x 30 -> -10
    assert next(iter(coords.iterItems())).getPosition(constants.SCIPION) == pytest.approx((-10, -12, -5))
    centres, errors, notes = sampling_inputs.box_plan(coords, {"TS_01": tomo}, CUBE, {"TS_01": (40, 64, 80)})
    assert errors == [] and notes == []
    assert centres["TS_01"].tolist() == [[30, 20, 15], [41, 34, 20], [50, 40, 25]]
    path = sampling_inputs.write_box_file(sampling_inputs.box_file_path(str(tmp_path / "boxes"), "TS_01"),
                                          centres["TS_01"])
    zyx = read_box_file(path, (40, 64, 80), CUBE, "TS_01")
    assert zyx.tolist() == [[15, 20, 30], [20, 34, 41], [25, 40, 50]]
    assert sampling_inputs.box_columns(str(tmp_path / "boxes"), ["TS_01"]) == {"TS_01": {star.BOX_FILE: path}}


def test_coordinates_picked_on_a_binned_tomogram_are_scaled(tmp_path):
    full = _tomogram(tmp_path, "TS_01", (40, 64, 80), 10.0)
    binned = _tomogram(tmp_path, "TS_01", (20, 32, 40), 20.0)       # bin 2 of the same volume
    coords = _coordinates(tmp_path, [binned], [(0, 10, 12, 8), (0, 30, 20, 12)], 20.0)
    centres, errors, _ = sampling_inputs.box_plan(coords, {"TS_01": full}, CUBE, {"TS_01": (40, 64, 80)})
    assert errors == [] and centres["TS_01"].tolist() == [[20, 24, 16], [60, 40, 24]]


def test_edges_outside_and_unmatched_tomograms(tmp_path):
    a = _tomogram(tmp_path, "TS_01_even", (40, 64, 80), 10.0)     # a half-tagged tsId: plain TS_01
    b = _tomogram(tmp_path, "TS_09", (40, 64, 80), 10.0)
    coords = _coordinates(tmp_path, [a, b], [(0, 2, 60, 39), (0, 40, 30, 20), (1, 5, 5, 5)], 10.0)
    tomo = _tomogram(tmp_path, "TS_01", (40, 64, 80), 10.0)
    other = _tomogram(tmp_path, "TS_02", (40, 64, 80), 10.0)
    shapes = {"TS_01": (40, 64, 80), "TS_02": (40, 64, 80)}
    centres, errors, notes = sampling_inputs.box_plan(coords, {"TS_01": tomo, "TS_02": other}, CUBE, shapes)
    assert errors == []
    # the cube of 16 fits for centres 8 .. n - 8: moved inwards
    assert centres["TS_01"].tolist() == [[8, 56, 32], [40, 30, 20]]
    assert any("1 of 2 coordinates moved inwards" in n for n in notes)
    assert any("no coordinates on TS_02" in n for n in notes)
    assert any("not in the input ignored: TS_09" in n for n in notes)
    far = _coordinates(tmp_path, [tomo], [(0, 100, 10, 10)], 10.0, name="far")
    _, errors, _ = sampling_inputs.box_plan(far, {"TS_01": tomo}, CUBE, {"TS_01": (40, 64, 80)})
    assert "1 of the 1 coordinates of TS_01 lie outside" in errors[0]
    _, errors, _ = sampling_inputs.box_plan(far, {"TS_02": other}, CUBE, {"TS_02": (40, 64, 80)})
    assert "no coordinate belongs to the tomograms" in errors[0]


# ------------------------------------------------------------------ the protocols
def _tomo_set(tmp_path, tomos):
    acq = acquisition()
    for tomo in tomos:
        tomo.setAcquisition(acq)
    return tomogram_set(tmp_path, "tomograms", tomos, acq=acq)


def _protocol(cls, tmp_path, **inputs):
    return protocol(cls, tmp_path / "run", **inputs)


def _convert(prot):
    """The protocol's conversion step, as _insertAllSteps gives it its argument; the STAR it wrote."""
    convert_step(prot)
    return star.TomogramsTable.read(prot._starPath())


def test_make_mask_writes_the_boundaries_into_the_star_and_the_core_honours_them(tmp_path):
    imodmodel = pytest.importorskip("imodmodel")
    import pandas as pd

    from isonet2core.config import MaskConfig
    from isonet2core.steps import masking
    from isonet2scipion.protocols import ProtIsoNet2MakeMask

    tomos = [_tomogram(tmp_path, ts, (32, 48, 48), 10.0) for ts in ("TS_01", "TS_02")]
    folder = tmp_path / "boundaries"
    folder.mkdir()
    outline = pd.DataFrame({"x": [10.0, 30, 30, 10, 20, 20], "y": [10.0, 10, 30, 30, 20, 20],
                            "z": [16.0, 16, 16, 16, 4, 24]})
    imodmodel.write(outline, folder / "TS_01_lamella.mod")
    prot = _protocol(ProtIsoNet2MakeMask, tmp_path, inputTomograms=_tomo_set(tmp_path, tomos),
                     boundaryFolder=str(folder))
    assert prot._validate() == []
    assert any("1 IMOD models" in line for line in prot._summary())
    table = _convert(prot)
    assert table.path(0, star.MASK_BOUNDARY) == folder / "TS_01_lamella.mod"
    assert table.value(1, star.MASK_BOUNDARY) is None
    masking.mask_star(prot._starPath(), MaskConfig(density_percentage=100, std_percentage=100, z_crop=0),
                      tmp_path / "masks")
    mask, _ = mrcio_read(tmp_path / "masks" / "TS_01_mask.mrc")
    assert mask[:4].sum() == 0 and mask[24:].sum() == 0 and mask[10, 20, 20] == 1 and mask[10, 5, 5] == 0
    assert mrcio_read(tmp_path / "masks" / "TS_02_mask.mrc")[0].all()
    prot.boundaryFolder.set(str(tmp_path / "missing"))
    assert any("does not exist" in e for e in prot._validate())


def mrcio_read(path):
    from isonet2core.io import mrcio
    return mrcio.read_mrc(path)


def test_refine_writes_box_files_from_coordinates_and_the_core_plans_them(tmp_path):
    from isonet2core.config import TrainConfig
    from isonet2core.training.plan import plan_tomograms
    from isonet2scipion.constants import HALVES_NONE
    from isonet2scipion.protocols import ProtIsoNet2Refine

    tomos = [_tomogram(tmp_path, ts, (40, 64, 80), 10.0) for ts in ("TS_01", "TS_02")]
    tomo_set = _tomo_set(tmp_path, tomos)
    coords = _coordinates(tmp_path, tomos, [(0, 30, 20, 15), (0, 50, 40, 25), (1, 40, 32, 20)], 10.0)
    prot = _protocol(ProtIsoNet2Refine, tmp_path, halvesSource=HALVES_NONE, inputTomograms=tomo_set,
                     inputCoordinates=coords, cube_size=16)
    assert prot._validate() == []
    assert any("3 coordinates on 2 tomograms" in line for line in prot._summary())
    table = _convert(prot)
    box = table.path(0, star.BOX_FILE)
    assert box == tmp_path / "run" / "extra" / "boxes" / "TS_01_centres.txt"
    specs = plan_tomograms(table, [0, 1], TrainConfig(method="isonet2", cube_size=16))
    assert [s.n_subtomos for s in specs] == [2, 1]
    assert box.read_text().splitlines()[1:] == ["30 20 15", "50 40 25"]
    # coordinates outside the tomograms are refused before running
    far = _coordinates(tmp_path, tomos, [(0, 300, 20, 15)], 10.0, name="far")
    prot.inputCoordinates.set(far)
    assert any("lie outside the tomogram" in e for e in prot._validate())
