"""Issue 26 item 6: the two STAR files of a protocol run, on Scipion objects built with tomo's
classes (tilt series at 2.5 Å, CTF series, tomograms reconstructed at 10 Å: binning 4, with
even/odd halves, MRC files on disk).

- ``extra/relion5/tomograms.star`` equals, column for column, what reliontomo's RELION-5 writer
  (``convert50_tomo.Writer.tomoSet2Star``, installed from PyPI) writes on the same objects, and
  the tilt-series STAR files it names are written by reliontomo's own ``tsSet2Star``;
- ``extra/isonet2_tomograms.star`` (what the core runs on) is read by the core and, as the
  official IsoNet2 program reads it, by ``starfile``: ``rlnTomoName`` the map's path or
  ``None``, every column of the program's ``prepare_star`` present;
- the plugin reads and merges columns with emtable, keeping every cell as written.
"""
import os
import sys

import mrcfile
import numpy as np
import pytest
import starfile
from scipion_objects import acquisition, convert_step, ctf_series_set, protocol, tilt_series_set
from tomo.objects import SetOfTomograms, Tomogram

from isonet2core.io import star
from isonet2scipion import convert, relion_export
from isonet2scipion.constants import HALVES_NONE, HALVES_SEPARATE, TOMOGRAMS_STAR
from isonet2scipion.protocols import ProtIsoNet2Refine

Writer = pytest.importorskip("reliontomo.convert.convert50_tomo").Writer

ANGLES = [-6.0, -3.0, 0.0, 3.0, 6.0]
TS_PX, TOMO_PX = 2.5, 10.0
SHAPE_ZYX = (8, 24, 32)


def _acq(voltage=300.0):
    return acquisition(-6.0, 6.0, voltage=voltage, tiltAxisAngle=85.0, doseInitial=0.0,
                       dosePerFrame=3.0)


def _mrc(path):
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(np.zeros(SHAPE_ZYX, dtype=np.float32))
        m.voxel_size = TOMO_PX
    return str(path)


def _ts_set(folder, ts_ids, disabled=()):
    return tilt_series_set(folder, ts_ids, ANGLES, range(len(ANGLES)), disabled=disabled,
                           stack_ext=".mrcs", sampling=TS_PX, acq=_acq,
                           series_acq=lambda ts_id: _acq(voltage=200.0 if ts_id == "TS_02" else 300.0))


def _ctf_set(folder, ts_set):
    return ctf_series_set(folder, ts_set, dict.fromkeys(ts_set.getTSIds(), 30000.0), ANGLES,
                          range(len(ANGLES)), per_degree=0.0, per_view=100.0, resolution=8.0,
                          fit_quality=0.5)


def _tomo_set(folder, ts_set, name="tomos", tag=None):
    """Tomograms as IMOD's reconstruction registers them (copyInfo(ts), binned to 10 Å, halves
    [odd, even]); with ``tag`` a separate half set (``TS_01_even`` ...)."""
    tomo_set = SetOfTomograms(filename=str(folder / f"{name}.sqlite"))
    tomo_set.setSamplingRate(TOMO_PX)
    tomo_set.setAcquisition(ts_set.getAcquisition())
    for ts in ts_set.iterItems():
        ts_id = ts.getTsId()
        tomo = Tomogram(tsId=f"{ts_id}_{tag}" if tag else ts_id)
        tomo.copyInfo(ts)
        tomo.setSamplingRate(TOMO_PX)
        stem = folder / ts_id / (f"{ts_id}_{tag}" if tag else ts_id)
        stem.parent.mkdir(exist_ok=True)
        tomo.setFileName(_mrc(f"{stem}.mrc"))
        if not tag:
            tomo.setHalfMaps([_mrc(f"{stem}_odd.mrc"), _mrc(f"{stem}_even.mrc")])
        tomo_set.append(tomo)
    tomo_set.write()
    return tomo_set


@pytest.fixture()
def project(tmp_path, monkeypatch):
    """The objects, and the working directory a project's protocols run in."""
    monkeypatch.chdir(tmp_path)
    ts_set = _ts_set(tmp_path, ["TS_01", "TS_02"], disabled={("TS_01", 6.0)})
    ctf_set = _ctf_set(tmp_path, ts_set)
    return ts_set, ctf_set, _tomo_set(tmp_path, ts_set)


def _refine(**inputs):
    return protocol(ProtIsoNet2Refine, "Runs/000002_ProtIsoNet2Refine", **inputs)


def _reliontomo_rows(tomo_set, ts_set, folder):
    """What reliontomo's RELION-5 writer writes on the same objects, as its extraction protocol
    calls it (dicts {tsId: clone}, handedness -1, unbinned pixel = the tilt series')."""
    tomos = {t.getTsId(): t.clone() for t in tomo_set.iterItems()}
    series = {t.getTsId(): t.clone(ignoreAttrs=[]) for t in ts_set.iterItems()}
    Writer.tomoSet2Star(tomos, series, folder, handedness=-1, outFileName="reliontomo.star")
    return relion_export.read_relion5_star(os.path.join(folder, "reliontomo.star"))


def _assert_rows_equal(ours, theirs):
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        assert set(ref) <= set(mine)
        assert set(mine) - set(ref) <= set(relion_export.HALF_COLUMNS)
        for column, value in ref.items():
            if isinstance(value, str):
                assert mine[column] == value, column
            else:
                assert mine[column] == pytest.approx(value, abs=1e-6), column


def test_relion5_export_equals_reliontomo_writer(project):
    ts_set, ctf_set, tomo_set = project
    prot = _refine(inputTomograms=tomo_set, inputTiltSeries=ts_set, inputCtfs=ctf_set)
    convert_step(prot)
    folder = prot._getExtraPath(relion_export.RELION5_DIR)
    ours = relion_export.read_relion5_star(os.path.join(folder, "tomograms.star"))
    theirs = _reliontomo_rows(tomo_set, ts_set, folder)
    _assert_rows_equal(ours, theirs)
    row = ours[0]
    assert [c for c in row][:len(relion_export.TOMO_STAR_COLUMNS)] == \
        list(relion_export.TOMO_STAR_COLUMNS)
    assert (row["rlnTomoTiltSeriesPixelSize"], row["rlnTomoTomogramBinning"]) == (TS_PX, 4.0)
    assert (row["rlnTomoSizeX"], row["rlnTomoSizeY"], row["rlnTomoSizeZ"]) == (128, 96, 32)
    assert ours[1]["rlnVoltage"] == 200.0      # the tilt series' acquisition, as reliontomo
    assert row["rlnTomoReconstructedTomogramHalf1"].endswith("TS_01_even.mrc")
    assert row["rlnTomoReconstructedTomogramHalf2"].endswith("TS_01_odd.mrc")
    # the tilt-series STAR files it names were written by reliontomo's own code
    for r in ours:
        assert os.path.isfile(r["rlnTomoTiltSeriesStarFile"])
    views = relion_export.Table()
    views.read(ours[0]["rlnTomoTiltSeriesStarFile"], tableName="TS_01")
    assert sorted(v.rlnTomoNominalStageTiltAngle for v in views) == [-6.0, -3.0, 0.0, 3.0]
    # the core reads the export: names, its own pixel size from tilt series x binning, halves
    table = star.TomogramsTable.read(os.path.join(folder, "tomograms.star"))
    assert [table.tomo_name(r) for r in range(2)] == ["TS_01", "TS_02"]
    assert table.pixel_size_a(0) == pytest.approx(TOMO_PX) and table.has_halves()
    assert "STAR for reliontomo / RELION-5" in " ".join(prot._summary())


def test_run_star_is_what_the_official_isonet2_and_the_core_read(project):
    ts_set, ctf_set, tomo_set = project
    prot = _refine(inputTomograms=tomo_set, inputTiltSeries=ts_set, inputCtfs=ctf_set)
    entries = convert_step(prot)
    path = prot._getExtraPath(TOMOGRAMS_STAR)
    assert TOMOGRAMS_STAR == "isonet2_tomograms.star"
    table = star.TomogramsTable.read(path)
    assert table.layout == "isonet2"
    assert [table.tomo_name(r) for r in range(2)] == ["TS_01", "TS_02"]
    assert table.value(0, star.TS_PIXEL_SIZE) == TS_PX and table.value(0, star.TOMO_BINNING) == 4.0
    assert table.pixel_size_a(0) == TOMO_PX
    # as the official program reads it: starfile, rlnTomoName the full map, its columns present
    df = starfile.read(path)
    assert all(c in df.columns for c in star.ISONET2_COLUMNS)
    assert list(df["rlnTomoName"]) == [e.full for e in entries]
    assert list(df["rlnDeconvTomoName"].astype(str)) == ["None", "None"]
    summary = " ".join(prot._summary())
    assert "STAR for the official IsoNet2" in summary
    assert "Tilt-series pixel TS_01: 2.5 Å, binning 4 (tilt series)" in summary


def test_without_tilt_series_the_tomogram_gives_the_pixel_and_binning_1(project):
    _, _, tomo_set = project
    prot = _refine(inputTomograms=tomo_set)
    entries = convert_step(prot)
    assert [e.binning for e in entries] == [1.0, 1.0]
    rows = relion_export.read_relion5_star(prot._relion5StarPath())
    assert rows[0]["rlnTomoTiltSeriesPixelSize"] == TOMO_PX
    assert rows[0]["rlnTomoTomogramBinning"] == 1.0 and rows[0]["rlnTomoSizeX"] == 32
    # no tilt series: no tilt-series STAR file (the column names where reliontomo puts it)
    assert not os.path.exists(rows[0]["rlnTomoTiltSeriesStarFile"])


def test_tilt_series_reached_through_the_ctf_estimations(project):
    ts_set, ctf_set, tomo_set = project
    prot = _refine(inputTomograms=tomo_set, inputCtfs=ctf_set)
    entries = convert_step(prot)
    assert entries[0].ts_pixel_size_a == TS_PX
    assert entries[0].ts_pixel_source == "tilt series of the CTF estimation"
    ours = relion_export.read_relion5_star(prot._relion5StarPath())
    # reliontomo given the tilt series the CTF estimations point to (tomo loads them with the
    # set's acquisition)
    linked = {c.getTsId(): c.getTiltSeries() for c in ctf_set.iterItems()}
    tomos = {t.getTsId(): t.clone() for t in tomo_set.iterItems()}
    Writer.tomoSet2Star(tomos, linked, prot._relion5Folder(), outFileName="reliontomo.star")
    _assert_rows_equal(ours, relion_export.read_relion5_star(
        os.path.join(prot._relion5Folder(), "reliontomo.star")))
    assert os.path.isfile(ours[1]["rlnTomoTiltSeriesStarFile"])


def test_separate_half_sets_with_tagged_ts_ids(project, tmp_path):
    ts_set, ctf_set, _ = project
    even = _tomo_set(tmp_path, ts_set, "even", tag="even")
    odd = _tomo_set(tmp_path, ts_set, "odd", tag="odd")
    prot = _refine(halvesSource=HALVES_SEPARATE, inputEven=even, inputOdd=odd,
                   inputTiltSeries=ts_set, inputCtfs=ctf_set)
    convert_step(prot)
    # the even map's file name (TS_01_even.mrc) gives TS_01: the official layout, no full map
    df = starfile.read(prot._getExtraPath(TOMOGRAMS_STAR))
    assert list(df["rlnTomoName"].astype(str)) == ["None", "None"]
    table = star.TomogramsTable.read(prot._getExtraPath(TOMOGRAMS_STAR))
    assert [table.tomo_name(r) for r in range(2)] == ["TS_01", "TS_02"]
    rows = relion_export.read_relion5_star(prot._relion5StarPath())
    assert [r["rlnTomoName"] for r in rows] == ["TS_01", "TS_02"]
    assert rows[0]["rlnTomoReconstructedTomogramHalf2"].endswith("TS_01_odd.mrc")


def test_file_names_that_do_not_give_the_ts_id_keep_the_relion5_layout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tomo_set = SetOfTomograms(filename=str(tmp_path / "imported.sqlite"))
    tomo_set.setSamplingRate(TOMO_PX)
    tomo_set.setAcquisition(_acq())
    tomo = Tomogram(tsId="TS_01")
    tomo.setSamplingRate(TOMO_PX)
    tomo.setAcquisition(_acq())
    tomo.setFileName(_mrc(tmp_path / "rec_bin4.mrc"))
    tomo_set.append(tomo)
    tomo_set.write()
    prot = _refine(halvesSource=HALVES_NONE, inputTomograms=tomo_set)
    convert_step(prot)
    table = star.TomogramsTable.read(prot._getExtraPath(TOMOGRAMS_STAR))
    assert table.layout == "relion5" and table.tomo_name(0) == "TS_01"
    assert "the official IsoNet2 cannot name" in " ".join(prot._summary())


def test_without_reliontomo_the_tilt_series_stars_are_named_and_reported(project, monkeypatch):
    ts_set, ctf_set, tomo_set = project
    monkeypatch.setitem(sys.modules, "reliontomo.convert.convert50_tomo", None)
    series = {t.getTsId(): t.clone(ignoreAttrs=[]) for t in ts_set.iterItems()}
    ctfs = {c.getTsId(): c.clone(ignoreAttrs=[]) for c in ctf_set.iterItems()}
    written, notes = relion_export.write_tilt_series_stars(series, ctfs, "out")
    assert written == [] and "scipion-em-reliontomo" in notes[0]
    written, notes = relion_export.write_tilt_series_stars(series, {}, "out")
    assert written == [] and "no CTF estimation for TS_01, TS_02" in notes[0]


def test_read_and_merge_columns_with_emtable_keep_every_cell(tmp_path):
    """Rows without a full map (rlnTomoName None in the program's layout), a path with a space
    in the second row: names by the core's rule, cells kept, new columns filled with None."""
    rows = [convert.TomoEntry(ts_id=t, full=None, even=str(tmp_path / f"a b/{t}_even.mrc"),
                              odd=str(tmp_path / f"a b/{t}_odd.mrc"), pixel_size_a=10.0,
                              voltage_kv=300.0, cs_mm=2.7, amplitude_contrast=0.07,
                              tilt_min_deg=-60.0, tilt_max_deg=60.0, ts_pixel_size_a=2.5)
            for t in ("TS_01", "TS_02")]
    path = convert.write_tomograms_star(rows, tmp_path / "run.star")
    before = star.TomogramsTable.read(path)
    assert before.layout == "isonet2"
    assert convert.read_column(path, star.TOMO_HALF1) == {
        "TS_01": tmp_path / "a b/TS_01_even.mrc", "TS_02": tmp_path / "a b/TS_02_even.mrc"}
    convert.merge_columns(path, {"TS_02": {star.DENOISED: str(tmp_path / "d e/TS_02.mrc")}})
    after = star.TomogramsTable.read(path)
    assert after.layout == "isonet2"
    assert after.value(1, star.DENOISED) == str(tmp_path / "d e/TS_02.mrc")
    assert after.value(0, star.DENOISED) is None
    for column in before.columns:
        assert [before.value(r, column) for r in range(2)] == \
            [after.value(r, column) for r in range(2)], column
    df = starfile.read(path)
    assert list(df["rlnDenoisedTomoName"].astype(str))[0] == "None"
