"""star: the tomograms table, our files, RELION-5 files and IsoNet2-program files."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from isonet2core.config import Microscope
from isonet2core.io import input_names, star
from isonet2core.io.star import TomogramsTable

ISONET2_PROGRAM_FILE = """
data_

loop_
_rlnIndex #1
_rlnTomoName #2
_rlnTomoReconstructedTomogramHalf1 #3
_rlnTomoReconstructedTomogramHalf2 #4
_rlnPixelSize #5
_rlnDefocus #6
_rlnVoltage #7
_rlnSphericalAberration #8
_rlnAmplitudeContrast #9
_rlnSnrFalloff #10
_rlnDeconvStrength #11
_rlnDeconvTomoName #12
_rlnMaskBoundary #13
_rlnMaskName #14
_rlnTiltMin #15
_rlnTiltMax #16
_rlnNumberSubtomo #17
1\tfull/TS_01_full.mrc\tEVN/TS_01_EVN.mrc\tODD/TS_01_ODD.mrc\t5.4\t30000\t300\t2.7\t0.1\tNone\tNone\tNone\tNone\tNone\t-50\t55\tNone
2\tNone\tEVN/TS_02_EVN.mrc\tODD/TS_02_ODD.mrc\t5.4\t32000\t300\t2.7\t0.07\t1.0\t1.0\tdeconv/TS_02.mrc\tNone\tmask/TS_02_mask.mrc\t-60\t60\t1500
"""

RELION5_FILE = """
# version 50001

data_global

loop_
_rlnTomoName #1
_rlnTomoTiltSeriesStarFile #2
_rlnVoltage #3
_rlnSphericalAberration #4
_rlnAmplitudeContrast #5
_rlnMicrographOriginalPixelSize #6
_rlnTomoHand #7
_rlnOpticsGroupName #8
_rlnTomoTiltSeriesPixelSize #9
_rlnTomoTomogramBinning #10
_rlnTomoSizeX #11
_rlnTomoSizeY #12
_rlnTomoSizeZ #13
_rlnTomoReconstructedTomogram #14
0001 AlignTiltSeries/job053/tilt_series/0001.star   300.000000     2.700000     0.100000     2.390000     -1.00000 opticsGroup1     2.390000     6.000000         4092         4092         1392 AlignTiltSeries/job053/tomograms/rec_0001.mrc
pos_2 AlignTiltSeries/job053/tilt_series/pos_2.star   200.000000     2.700000     0.100000     2.390000     -1.00000 opticsGroup1     2.390000     4.000000         4092         4092         1392 AlignTiltSeries/job053/tomograms/rec_pos_2.mrc

# version 50001

data_0001

loop_
_rlnMicrographMovieName #1
_rlnTomoNominalStageTiltAngle #2
frames/0001_001.eer  0.0
"""


def _records():
    return [
        {star.TOMO_NAME: "tomo_001", star.TOMO_HALF1: "even/tomo_001.mrc",
         star.TOMO_HALF2: "odd/tomo_001.mrc", star.PIXEL_SIZE: 10.0, star.DEFOCUS: 25000.0,
         star.TILT_MIN: -58.0, star.TILT_MAX: 61.0, star.N_SUBTOMO: 1500,
         star.MASK: "mask dir/tomo_001_mask.mrc"},
        {star.TOMO_NAME: "tomo_002", star.TOMO_FULL: "full/tomo_002.mrc",
         star.TOMO_HALF1: "even/tomo_002.mrc", star.TOMO_HALF2: "odd/tomo_002.mrc",
         star.PIXEL_SIZE: 10.0, star.DEFOCUS: 31000.0, star.AC: 0.07, star.N_SUBTOMO: None,
         "rlnMyColumn": "kept"},
    ]


def test_round_trip_of_our_files(tmp_path):
    table = TomogramsTable.from_records(_records())
    assert [table.index(r) for r in range(2)] == [1, 2]
    path = table.write(tmp_path / "tomograms.star")
    assert sorted(os.listdir(tmp_path)) == ["tomograms.star"]        # no temporary left
    back = TomogramsTable.read(path)
    assert len(back) == 2 and back.source == path
    for r in range(2):
        for column, value in table.to_records()[r].items():
            assert back.value(r, column) == value, column
    assert back.value(0, star.TOMO_FULL) is None                 # partially empty -> None
    assert back.value(1, star.MASK) is None
    assert back.value(1, star.N_SUBTOMO) is None
    assert back.value(0, star.MASK) == "mask dir/tomo_001_mask.mrc"   # spaces survive
    assert isinstance(back.value(0, star.N_SUBTOMO), int)
    assert back.value(1, "rlnMyColumn") == "kept"
    # RELION-5 columns are filled: tilt-series pixel size, microscope defaults, hand
    assert back.value(0, star.TS_PIXEL_SIZE) == 10.0
    assert back.value(0, star.VOLTAGE) == 300.0 and back.value(0, star.HAND) == -1.0
    # the same file again: writing is stable
    assert TomogramsTable.read(back.write(tmp_path / "again.star")).to_records() == back.to_records()


def test_written_text_is_a_relion5_global_block_without_none_strings(tmp_path):
    text = TomogramsTable.from_records(_records()).to_star_text()
    assert "data_global" in text and "# version 50001" in text
    assert "None" not in text
    header = [line for line in text.splitlines() if line.startswith("_rln")]
    for column in (star.TOMO_NAME, star.TOMO_FULL, star.TOMO_HALF1, star.TOMO_HALF2,
                   star.VOLTAGE, star.CS, star.AC, star.TS_PIXEL_SIZE, star.PIXEL_SIZE,
                   star.HAND, star.INDEX, star.DEFOCUS, star.TILT_MIN, star.TILT_MAX):
        assert any(h.split()[0] == "_" + column for h in header), column
    # an all-empty optional column is left out
    assert not any(h.split()[0] == "_" + star.DECONV for h in header)
    rows = [line.split() for line in text.splitlines() if line.startswith(("1 ", "2 "))]
    assert rows[0][1] == "tomo_001" and rows[1][1] == "tomo_002"
    assert '""' in rows[0]                          # RELION's empty-string token


def test_isonet2_program_file(tmp_path):
    path = tmp_path / "tomograms.star"
    path.write_text(ISONET2_PROGRAM_FILE)
    table = TomogramsTable.read(path)
    assert len(table) == 2
    # a path in rlnTomoName moves to the full-map column; the name becomes the stem
    assert table.tomo_name(0) == "TS_01_full"
    assert table.value(0, star.TOMO_FULL) == "full/TS_01_full.mrc"
    # "None" in rlnTomoName: named after the even half, tag removed
    assert table.tomo_name(1) == "TS_02"
    assert table.value(1, star.TOMO_FULL) is None
    assert table.has_halves()
    for column in (star.SNR_FALLOFF, star.DECONV, star.MASK_BOUNDARY, star.MASK, star.N_SUBTOMO):
        assert table.value(0, column) is None, column
    assert table.value(1, star.DECONV) == "deconv/TS_02.mrc"
    assert table.value(1, star.N_SUBTOMO) == 1500
    m = table.microscope(0)
    assert m == Microscope(pixel_size_a=5.4, defocus_a=30000.0, voltage_kv=300.0, cs_mm=2.7,
                           amplitude_contrast=0.1, tilt_min_deg=-50.0, tilt_max_deg=55.0)
    assert table.microscope(1).amplitude_contrast == 0.07
    # rewritten in the RELION-5 layout: data_global, identifiers in rlnTomoName, no "None"
    assert table.layout == "isonet2"
    text = table.to_star_text("relion5")
    assert "data_global" in text and "None" not in text
    back = TomogramsTable.read(table.write(tmp_path / "ours.star", "relion5"))
    assert back.layout == "relion5"
    assert [back.tomo_name(r) for r in range(2)] == ["TS_01_full", "TS_02"]
    assert back.value(0, star.TOMO_FULL) == "full/TS_01_full.mrc"
    # written as it was read: the program's layout, the same table
    again = TomogramsTable.read(table.write(tmp_path / "program.star"))
    assert again.layout == "isonet2"
    for r in range(2):
        assert again.tomo_name(r) == table.tomo_name(r) and again.microscope(r) == table.microscope(r)
        for column in (star.TOMO_FULL, star.TOMO_HALF1, star.TOMO_HALF2, star.DECONV, star.MASK):
            assert again.value(r, column) == table.value(r, column), column


def test_the_isonet2_layout_is_what_the_program_reads(tmp_path):
    """The IsoNet2 program reads its STAR with starfile and indexes rows by its prepare_star's
    columns: rlnTomoName is the full map's path (None without one), empty cells are None, and
    every one of its columns is there; RELION-5's columns come along; ours reads it back."""
    import starfile
    records = _records()                         # row 1 has no full map, row 2 one
    table = TomogramsTable.from_records(records)
    path = table.write(tmp_path / "program.star", "isonet2")
    df = starfile.read(path)                      # as the program reads it: one block, a DataFrame
    assert list(df.columns[:2]) == [star.INDEX, star.TOMO_NAME]
    assert set(star.ISONET2_COLUMNS) <= set(df.columns)
    assert {star.TS_PIXEL_SIZE, star.HAND, star.TOMO_FULL} <= set(df.columns)
    assert df[star.TOMO_NAME].tolist() == ["None", records[1][star.TOMO_FULL]]
    assert df[star.DECONV].tolist() == ["None", "None"]          # its test: not in [None, "None"]
    assert df[star.N_SUBTOMO].tolist() == [1500, 1500]           # row 2's empty: 3000 / tomograms
    assert df[star.DEFOCUS].dtype.kind == "f" and df[star.TILT_MIN].dtype.kind == "f"
    back = TomogramsTable.read(path)
    assert back.layout == "isonet2"
    assert [back.tomo_name(r) for r in range(2)] == [table.tomo_name(r) for r in range(2)]
    for r in range(2):
        assert back.microscope(r) == table.microscope(r)       # empty tilts: the defaults, written
        for column in (star.TOMO_FULL, star.TOMO_HALF1, star.MASK):
            assert back.value(r, column) == table.value(r, column), column


def test_the_isonet2_layout_refuses_a_name_its_path_would_not_give_back():
    records = _records()
    records[0][star.TOMO_NAME] = "renamed"
    with pytest.raises(ValueError, match=r"tomogram renamed: in the IsoNet2 layout the name is read back"):
        TomogramsTable.from_records(records).to_star_text("isonet2")
    with pytest.raises(ValueError, match="STAR layout must be one of isonet2, relion5"):
        TomogramsTable.from_records(_records()).to_star_text("relion4")


def test_relion5_tomograms_star(tmp_path):
    path = tmp_path / "tomograms.star"
    path.write_text(RELION5_FILE)
    table = TomogramsTable.read(path)
    assert len(table) == 2
    assert table.tomo_name(0) == "0001"                          # identifiers stay strings
    assert [table.index(r) for r in range(2)] == [1, 2]          # rlnIndex defaults to 1..n
    assert table.pixel_size_a(0) == pytest.approx(2.39 * 6)     # tilt-series pixel x binning
    assert table.pixel_size_a(1) == pytest.approx(2.39 * 4)
    assert not table.has_halves()
    assert table.value(0, star.DEFOCUS) is None and table.value(0, star.MASK) is None
    m = table.microscope(1)
    assert m.voltage_kv == 200.0 and m.defocus_a == Microscope.defocus_a
    assert (m.tilt_min_deg, m.tilt_max_deg) == (-60.0, 60.0)
    # written back: RELION columns kept, the pixel size of the maps added
    back = TomogramsTable.read(table.write(tmp_path / "out.star"))
    assert back.value(0, "rlnTomoTiltSeriesStarFile") == "AlignTiltSeries/job053/tilt_series/0001.star"
    assert back.value(0, star.TS_PIXEL_SIZE) == pytest.approx(2.39)
    assert back.pixel_size_a(0) == pytest.approx(14.34)
    assert back.tomo_name(0) == "0001"


def test_values_and_columns():
    table = TomogramsTable.from_records(_records())
    assert table.has_column(star.DEFOCUS) and not table.has_column(star.DECONV)
    table.set_value(0, star.DECONV, Path("deconv/tomo_001.mrc"))
    assert table.has_column(star.DECONV) and table.value(1, star.DECONV) is None
    assert table.value(1, star.DECONV, default="x") == "x"
    table.set_column(star.CORRECTED, ["a.mrc", None])
    assert table.value(0, star.CORRECTED) == "a.mrc" and table.value(1, star.CORRECTED) is None
    with pytest.raises(ValueError, match="not the string 'None'"):
        table.set_value(0, star.MASK, "None")
    with pytest.raises(ValueError, match="1 values for 2 tomograms"):
        table.set_column(star.MASK, ["a"])
    with pytest.raises(ValueError, match="rlnTiltMin.*'abc'"):
        table.set_value(0, star.TILT_MIN, "abc")
    with pytest.raises(ValueError, match="duplicate values tomo_001"):
        table.set_value(1, star.TOMO_NAME, "tomo_001")
    assert table.tomo_name(1) == "tomo_002"                      # unchanged after the error
    with pytest.raises(ValueError, match="duplicate values 1"):
        table.set_column(star.INDEX, [1, 1])
    with pytest.raises(ValueError, match="rlnPixelSize cannot be empty"):
        table.set_value(0, star.PIXEL_SIZE, None)
    with pytest.raises(ValueError, match="pixel size must be positive, got -1"):
        table.set_column(star.PIXEL_SIZE, [5.0, -1])
    assert table.pixel_size_a(1) == 10.0


def test_rows_for_and_input_column():
    table = TomogramsTable.from_records(_records() + [
        {star.TOMO_NAME: "tomo_003", star.TOMO_FULL: "c.mrc", star.PIXEL_SIZE: 10.0}])
    assert table.rows_for(None) == [0, 1, 2]
    assert table.rows_for([3, 1]) == [0, 2]
    with pytest.raises(ValueError, match="rlnIndex 7"):
        table.rows_for([1, 7])
    assert table.input_column(1, star.DECONV, (star.TOMO_FULL,)) == star.TOMO_FULL
    with pytest.raises(ValueError, match="tomo_001.*rlnDeconvTomoName or rlnTomoReconstructedTomogram"):
        table.input_column(0, star.DECONV, (star.TOMO_FULL,))


def test_path_resolution(tmp_path, monkeypatch):
    star_dir = tmp_path / "project"
    (star_dir / "even").mkdir(parents=True)
    (star_dir / "even" / "tomo_001.mrc").write_bytes(b"")
    path = TomogramsTable.from_records(_records()).write(star_dir / "tomograms.star")
    table = TomogramsTable.read(path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    # not in the current directory, but beside the STAR file
    assert table.path(0, star.TOMO_HALF1) == star_dir / "even" / "tomo_001.mrc"
    # found nowhere: taken against the current directory
    assert table.path(0, star.TOMO_HALF2) == work / "odd" / "tomo_001.mrc"
    # the current directory wins when the file is there
    (work / "even").mkdir()
    (work / "even" / "tomo_001.mrc").write_bytes(b"")
    assert table.path(0, star.TOMO_HALF1) == work / "even" / "tomo_001.mrc"
    table.set_value(0, star.MASK, str(tmp_path / "m.mrc"))
    assert table.path(0, star.MASK) == tmp_path / "m.mrc"
    assert table.path(0, star.DECONV) is None


def test_half_tags():
    assert input_names.strip_half_tag("tomo_001_EVN") == "tomo_001"
    assert input_names.strip_half_tag("tomo_001-odd") == "tomo_001"
    assert input_names.strip_half_tag("even_tomo_001") == "tomo_001"
    assert input_names.strip_half_tag("TS_3.half2") == "TS_3"
    assert input_names.strip_half_tag("event_1") == "event_1"
    assert input_names.strip_half_tag("odd") == "odd"
    assert input_names.half_tag("a_half_1") == "even" and input_names.half_tag("a_ODD") == "odd"
    assert input_names.half_tag("tomo") is None
    assert input_names.tomo_name_from_path("x/y/tomo_7_EVN.rec") == "tomo_7"


@pytest.mark.parametrize("text, message", [
    ("data_global\n\nloop_\n_rlnTomoName #1\n_rlnPixelSize #2\nt1 abc\n", r"rlnPixelSize.*'abc'"),
    ("data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoReconstructedTomogram #2\nt1 a.mrc\n",
     r"tomogram t1: no pixel size"),
    ("data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoReconstructedTomogram #2\n_rlnPixelSize #3\n"
     "t1 a.mrc -2\n", r"rlnPixelSize.*positive.*-2"),
    ("data_global\n\nloop_\n_rlnTomoName #1\n_rlnPixelSize #2\nt1 5\n", r"t1: no map"),
    ("data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoReconstructedTomogramHalf1 #2\n_rlnPixelSize #3\n"
     "t1 a.mrc 5\n", r"t1: rlnTomoReconstructedTomogramHalf1 is given but .*Half2 is empty"),
    ("data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoReconstructedTomogram #2\n_rlnPixelSize #3\n"
     "t1 a.mrc 5\nt1 b.mrc 5\n", r"rlnTomoName: duplicate values t1"),
    ("data_global\n\nloop_\n_rlnIndex #1\n_rlnTomoName #2\n_rlnTomoReconstructedTomogram #3\n"
     "_rlnPixelSize #4\n1.5 t1 a.mrc 5\n", r"rlnIndex: expected an integer, got 1.5"),
    ("data_global\n\nloop_\n_rlnTomoName #1\n_rlnPixelSize #2\n", r"lists no tomograms"),
    ("data_a\n\nloop_\n_rlnX #1\n1\n\ndata_b\n\nloop_\n_rlnX #1\n1\n", r"no data_global block"),
    ("just some text\n", r"no data_ block"),
])
def test_bad_files_name_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.star"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        TomogramsTable.read(path)
    assert str(path) in str(info.value)


def test_microscope_errors_name_file_and_tomogram(tmp_path):
    records = _records()
    records[0][star.TILT_MIN] = 70.0
    path = TomogramsTable.from_records(records).write(tmp_path / "t.star")
    table = TomogramsTable.read(path)
    with pytest.raises(ValueError, match=r"t\.star: tomogram tomo_001: tilt_min \(70.0\)"):
        table.microscope(0)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.star"):
        TomogramsTable.read(tmp_path / "nope.star")


def test_module_does_not_import_torch():
    code = "import sys, isonet2core.io.star; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
