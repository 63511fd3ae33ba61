"""The RELION-5 ``tomograms.star`` of the protocols' inputs, for reliontomo and RELION-5.

RELION-5 and the official IsoNet2 program disagree on ``rlnTomoName`` (an identifier for RELION-5;
the map's path, or ``None``, for the program), so each protocol writes two files: the one the
core runs on (``extra/isonet2_tomograms.star``, :mod:`isonet2scipion.convert`) and this export,
``extra/relion5/tomograms.star``, with the columns reliontomo's RELION-5 writer
(``reliontomo.convert.convert50_tomo.Writer.tomoSet2Star``, the ``tomograms.star`` of its
subtomogram extraction) writes, in its order, from the same Scipion attributes:

================================  ===========================================================
``rlnTomoName``                   the tsId
``rlnVoltage``                    kV, ``rlnSphericalAberration`` mm, ``rlnAmplitudeContrast``:
                                  the tilt series' acquisition (the tomogram's without one)
``rlnMicrographOriginalPixelSize``  the tilt series' sampling rate (reliontomo's default)
``rlnTomoHand``                   -1 (reliontomo's default)
``rlnOpticsGroupName``            ``optics1`` (reliontomo's value)
``rlnTomoTiltSeriesPixelSize``    the tilt series' sampling rate (the tomogram's without one)
``rlnTomoTiltSeriesStarFile``     ``<folder>/<tsId>.star`` (reliontomo's ``getTsStarFile``)
``rlnEtomoDirectiveFile``         ``<folder>/<tsId>.edf`` (a name only: reliontomo does not
                                  write that file either)
``rlnTomoTomogramBinning``        tomogram sampling / tilt-series sampling
``rlnTomoSizeX/Y/Z``              the map's size (header) times that binning: bin-1 voxels,
                                  written as integers (RELION-5 reads integers)
``rlnTomoReconstructedTomogram``  the tomogram's file name as Scipion stores it
================================  ===========================================================

plus ``rlnTomoReconstructedTomogramHalf1/2`` (even, odd: RELION-5's own reconstruction writes
them) when the tomograms have halves. Paths are as Scipion stores them (relative to the
project folder, as reliontomo writes them: RELION-5 runs in the project folder).

The per-tilt-series STAR files that ``rlnTomoTiltSeriesStarFile`` names are written by
reliontomo's own code (``Writer.tsSet2Star``: views enabled in the tilt series and the CTF
estimation, defocus, alignment) when scipion-em-reliontomo is installed and the tomogram has a
tilt series and a CTF estimation; otherwise the column still names the file reliontomo would
write and :func:`write_tilt_series_stars` says why it is missing.

The file is written with ``emtable``, as Scipion's plugins (reliontomo among them) write STAR.
"""
from __future__ import annotations

import io
import os
from typing import Dict, List, Optional, Sequence, Tuple

from emtable import Table

from isonet2core.io import atomic, star

RELION5_DIR = "relion5"                 # inside a protocol's extra folder
RELION5_TOMOGRAMS_STAR = "tomograms.star"
OPTICS_GROUP = "optics1"
DEFAULT_HAND = -1

TOMO_STAR_COLUMNS = (
    "rlnTomoName", "rlnVoltage", "rlnSphericalAberration", "rlnAmplitudeContrast",
    "rlnMicrographOriginalPixelSize", "rlnTomoHand", "rlnOpticsGroupName",
    "rlnTomoTiltSeriesPixelSize", "rlnTomoTiltSeriesStarFile", "rlnEtomoDirectiveFile",
    "rlnTomoTomogramBinning", "rlnTomoSizeX", "rlnTomoSizeY", "rlnTomoSizeZ",
    "rlnTomoReconstructedTomogram")
"""reliontomo's ``tomoStarFields`` (``reliontomo/constants.py``), in its order."""
HALF_COLUMNS = (star.TOMO_HALF1, star.TOMO_HALF2)


def tilt_series_star_path(ts_id: str, folder: str) -> str:
    """Where reliontomo writes (and names in ``rlnTomoTiltSeriesStarFile``) the STAR of one tilt
    series: ``<folder>/<tsId>.star`` (``convert50_tomo.getTsStarFile``)."""
    return os.path.join(folder, f"{ts_id}.star")


def relion5_records(tomos: Dict[str, object], tilt_series: Dict[str, object], folder: str, *,
                    hand: int = DEFAULT_HAND, half_maps: Optional[Dict[str, Tuple[str, str]]] = None,
                    set_acquisition=None) -> List[Dict[str, object]]:
    """One record (column -> value) per tomogram of ``tomos`` (``{tsId: Tomogram}``, in its order)
    with the values reliontomo's ``tomoSet2Star`` writes (module documentation).

    :param tilt_series: ``{tsId: TiltSeries}`` the tomograms were reconstructed from; a tomogram
        without one gets its own acquisition and sampling (binning 1). reliontomo leaves such a
        tomogram out.
    :param folder: the folder of the export (tilt-series STAR paths are named inside it).
    :param half_maps: ``{tsId: (even, odd)}`` file names.
    :param set_acquisition: used where a tomogram without a tilt series has no acquisition.
    :raises ValueError: naming a tomogram whose file cannot be read or that has no acquisition.
    """
    records = []
    for ts_id, tomo in tomos.items():
        ts = tilt_series.get(ts_id)
        source = ts if ts is not None else tomo
        acq = source.getAcquisition() or set_acquisition
        if acq is None or not acq.getVoltage():
            raise ValueError(f"tomogram {ts_id}: no acquisition (voltage, Cs, amplitude contrast)")
        ts_px = float(source.getSamplingRate())
        binning = float(tomo.getSamplingRate()) / ts_px
        dim = tomo.getDim()
        if dim is None:
            raise ValueError(f"tomogram {ts_id}: its file {tomo.getFileName()} cannot be read")
        values = [ts_id, float(acq.getVoltage()), float(acq.getSphericalAberration()),
                  float(acq.getAmplitudeContrast()), ts_px, int(hand), OPTICS_GROUP, ts_px,
                  tilt_series_star_path(ts_id, folder), os.path.join(folder, f"{ts_id}.edf"),
                  binning] + [int(round(n * binning)) for n in dim[:3]] + [tomo.getFileName()]
        record = dict(zip(TOMO_STAR_COLUMNS, values))
        if half_maps and ts_id in half_maps:
            record.update(zip(HALF_COLUMNS, half_maps[ts_id]))
        records.append(record)
    return records


def _star_value(value):
    """A cell for emtable, which writes strings as they are: quoted when empty or with spaces."""
    if isinstance(value, str) and (value == "" or any(ch.isspace() for ch in value)):
        return f'"{value}"'
    return value


def write_relion5_star(records: Sequence[Dict[str, object]], path) -> str:
    """Write ``records`` (:func:`relion5_records`) as a RELION-5 ``data_global`` loop (atomic);
    the half-map columns are written when every record has them. Returns ``path``."""
    if not records:
        raise ValueError(f"no tomograms to write to {path}")
    columns = list(TOMO_STAR_COLUMNS)
    if all(c in r for r in records for c in HALF_COLUMNS):
        columns += HALF_COLUMNS
    table = Table(columns=columns)
    for record in records:
        table.addRow(*[_star_value(record[c]) for c in columns])
    text = io.StringIO()
    text.write(f"# RELION-5 tomograms.star written by isonet2scipion\n\n"
               f"# version {star.STAR_VERSION}\n")
    table.writeStar(text, tableName=star.GLOBAL_BLOCK)
    atomic.write_text(path, text.getvalue())
    return str(path)


def read_relion5_star(path) -> List[Dict[str, object]]:
    """The rows of a RELION-5 ``tomograms.star`` (ours or reliontomo's) as dicts, read with
    emtable (numbers as numbers)."""
    table = Table()
    table.read(str(path), tableName=star.GLOBAL_BLOCK)
    return [row._asdict() for row in table]


def write_tilt_series_stars(tilt_series: Dict[str, object], ctfs: Dict[str, object],
                            folder: str) -> Tuple[List[str], List[str]]:
    """The per-tilt-series STAR files RELION-5 reads (``rlnTomoTiltSeriesStarFile``), written by
    reliontomo's own ``Writer.tsSet2Star`` (not copied here) for every tilt series with a CTF
    estimation. Returns the tsIds written and notes naming the ones that are not, and why."""
    missing_ctf = sorted(t for t in tilt_series if t not in ctfs)
    notes = [f"no CTF estimation for {', '.join(missing_ctf)}: RELION-5's tilt-series STAR "
             f"holds the defocus of each view"] if missing_ctf else []
    todo = {t: ts for t, ts in tilt_series.items() if t in ctfs}
    if not todo:
        return [], notes
    try:
        from reliontomo.convert.convert50_tomo import Writer
    except ImportError as exc:
        return [], notes + [f"scipion-em-reliontomo cannot be imported ({exc}): install it to "
                            f"get the tilt-series STAR files, or run reliontomo's protocols"]
    os.makedirs(folder, exist_ok=True)
    Writer().tsSet2Star(todo, {t: ctfs[t] for t in todo}, folder)
    written = [t for t in todo if os.path.exists(tilt_series_star_path(t, folder))]
    return written, notes
