"""The tomograms STAR file: column names and the one-row-per-tomogram table.

Every STAR read or write of the project goes through :class:`TomogramsTable`. This module
imports pandas (and ``starfile`` lazily, when reading) but never torch: the Scipion plugin
imports it.

What we write (``TomogramsTable.write``) is a RELION-5 ``tomograms.star``: a ``data_global``
loop where ``rlnTomoName`` is an identifier (the tilt-series id, e.g. ``tomo_001``, never a
path), the full map is ``rlnTomoReconstructedTomogram``, the even/odd halves are
``rlnTomoReconstructedTomogramHalf1/2``, with ``rlnVoltage``, ``rlnSphericalAberration``,
``rlnAmplitudeContrast``, ``rlnTomoTiltSeriesPixelSize``, ``rlnTomoHand`` (filled when missing:
tilt-series pixel size = ``rlnPixelSize / rlnTomoTomogramBinning``, microscope defaults of
:class:`config.Microscope`, hand -1) plus the IsoNet2 columns users know (``rlnIndex``,
``rlnPixelSize``, ``rlnDefocus``, ``rlnTiltMin/Max``, ``rlnMaskName``, ...).

Empty values: in memory an empty cell is ``None``. On disk, a column that is empty in every
row is left out; a column empty in some rows only is written with RELION's own token for an
empty string, ``""``. The reader maps ``""``, an empty field, ``None``/``none``, ``nan`` and
``<NA>`` to ``None``; our files never contain the string ``None``.

What we read (``TomogramsTable.read``): our files; RELION-5 ``tomograms.star`` (only RELION
columns: the pixel size is derived from ``rlnTomoTiltSeriesPixelSize`` times
``rlnTomoTomogramBinning``; missing IsoNet2 columns read as ``None`` and defaults apply); and
files of the IsoNet2 program (unnamed ``data_`` block, a PATH in ``rlnTomoName``, ``"None"``
for empty): a path found in ``rlnTomoName`` moves to ``rlnTomoReconstructedTomogram`` and the
identifier becomes the file stem (an even/odd tag such as ``_EVN`` removed); an empty
``rlnTomoName`` is named after the first half map.
"""
from __future__ import annotations

import logging
import math
import os
import shlex
import typing
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import pandas as pd

from isonet2core import __version__
from isonet2core.config import Microscope, StarLayout
from isonet2core.io import atomic, locks
from isonet2core.io.input_names import looks_like_path, tomo_name_from_path
from isonet2core.io.output_names import PathLike
from isonet2core.training.budget import default_subtomos_per_tomogram

logger = logging.getLogger(__name__)


# --- column names ------------------------------------------------------------------------
INDEX = "rlnIndex"
TOMO_NAME = "rlnTomoName"                            # identifier (tilt-series id), never a path
TOMO_FULL = "rlnTomoReconstructedTomogram"
TOMO_HALF1 = "rlnTomoReconstructedTomogramHalf1"     # even
TOMO_HALF2 = "rlnTomoReconstructedTomogramHalf2"     # odd
PIXEL_SIZE = "rlnPixelSize"                          # Angstrom per voxel of the maps listed
TS_PIXEL_SIZE = "rlnTomoTiltSeriesPixelSize"         # Angstrom per pixel of the tilt series
TOMO_BINNING = "rlnTomoTomogramBinning"              # map pixel / tilt-series pixel
DEFOCUS = "rlnDefocus"                               # Angstrom at 0 degrees, underfocus positive
VOLTAGE = "rlnVoltage"                               # kV
CS = "rlnSphericalAberration"                        # mm
AC = "rlnAmplitudeContrast"
HAND = "rlnTomoHand"
TILT_MIN = "rlnTiltMin"                              # degrees
TILT_MAX = "rlnTiltMax"                              # degrees
TILT_STEP = "rlnTiltStep"                            # degrees (IsoNet2 program files)
SNR_FALLOFF = "rlnSnrFalloff"
DECONV_STRENGTH = "rlnDeconvStrength"
DECONV = "rlnDeconvTomoName"
MASK = "rlnMaskName"
MASK_BOUNDARY = "rlnMaskBoundary"
BOX_FILE = "rlnBoxFile"
N_SUBTOMO = "rlnNumberSubtomo"
CORRECTED = "rlnCorrectedTomoName"
CORRECTED_HALF1 = "rlnCorrectedTomoHalf1"
CORRECTED_HALF2 = "rlnCorrectedTomoHalf2"
DENOISED = "rlnDenoisedTomoName"
DENOISED_HALF1 = "rlnDenoisedTomoHalf1"
DENOISED_HALF2 = "rlnDenoisedTomoHalf2"

GLOBAL_BLOCK = "global"
LAYOUTS: Tuple[str, ...] = typing.get_args(StarLayout)
"""How a table is written: ``relion5`` (``rlnTomoName`` an identifier, empty cells ``""``) or
``isonet2`` (what the IsoNet2 program reads: ``rlnTomoName`` the full map's path or ``None``,
empty cells ``None``, its columns always present; the RELION-5 columns are carried too)."""
ISONET2_COLUMNS = ("rlnIndex", "rlnTomoName", "rlnTomoReconstructedTomogramHalf1",
                   "rlnTomoReconstructedTomogramHalf2", "rlnPixelSize", "rlnDefocus", "rlnVoltage",
                   "rlnSphericalAberration", "rlnAmplitudeContrast", "rlnDeconvTomoName",
                   "rlnMaskBoundary", "rlnMaskName", "rlnTiltMin", "rlnTiltMax", "rlnBoxFile",
                   "rlnNumberSubtomo", "rlnCorrectedTomoName")
"""The columns the IsoNet2 program's ``prepare_star`` writes, in its order: its commands index
rows by them, so the ``isonet2`` layout always writes them."""
STAR_VERSION = 50001

INT_COLUMNS = frozenset({INDEX, N_SUBTOMO})
FLOAT_COLUMNS = frozenset({PIXEL_SIZE, TS_PIXEL_SIZE, TOMO_BINNING, DEFOCUS, VOLTAGE, CS, AC,
                           HAND, TILT_MIN, TILT_MAX, TILT_STEP, SNR_FALLOFF, DECONV_STRENGTH})
PATH_COLUMNS = frozenset({TOMO_FULL, TOMO_HALF1, TOMO_HALF2, DECONV, MASK, MASK_BOUNDARY,
                          BOX_FILE, CORRECTED, CORRECTED_HALF1, CORRECTED_HALF2, DENOISED,
                          DENOISED_HALF1, DENOISED_HALF2})
STRING_COLUMNS = PATH_COLUMNS | {TOMO_NAME}
# order of the known columns in written files; other columns follow in their read order
COLUMN_ORDER = (INDEX, TOMO_NAME, TOMO_FULL, TOMO_HALF1, TOMO_HALF2, PIXEL_SIZE, TS_PIXEL_SIZE,
                TOMO_BINNING, VOLTAGE, CS, AC, HAND, DEFOCUS, TILT_MIN, TILT_MAX, TILT_STEP,
                SNR_FALLOFF, DECONV_STRENGTH, DECONV, MASK_BOUNDARY, MASK, BOX_FILE, N_SUBTOMO,
                CORRECTED, CORRECTED_HALF1, CORRECTED_HALF2, DENOISED, DENOISED_HALF1,
                DENOISED_HALF2)
DEFAULT_HAND = -1.0

_EMPTY_TOKENS = ("", "none", "nan", '""', "''", "<na>")


def path_for_star(path: PathLike) -> str:
    """How a file is recorded in a STAR.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    str
        Relative to the current directory when it lies inside it, else absolute.
    """
    absolute = os.path.abspath(path)
    cwd = os.getcwd()
    if (absolute + os.sep).startswith(cwd.rstrip(os.sep) + os.sep):
        return os.path.relpath(absolute, cwd)
    return absolute


def is_empty(value: Any) -> bool:
    """Whether a STAR value is empty.

    Parameters
    ----------
    value : Any
        A cell value.

    Returns
    -------
    bool
        True for ``None``, NaN/NA and the empty tokens ``""``, ``None``, ``nan``.
    """
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in _EMPTY_TOKENS
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _convert(column: str, value: Any, where: str) -> Any:
    """One cell in its in-memory type (``None`` for empty); ValueError naming ``where``."""
    if is_empty(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str):   # numpy scalars
        value = value.item()
    if column in INT_COLUMNS:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not math.isfinite(number) or number != int(number):
            raise ValueError(f"{where}: column {column}: expected an integer, got {value!r}")
        return int(number)
    if column in FLOAT_COLUMNS:
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not math.isfinite(number):
            raise ValueError(f"{where}: column {column}: expected a number, got {value!r}")
        return number
    if column in STRING_COLUMNS:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        text = str(value)
        if "\n" in text or "\r" in text:
            raise ValueError(f"{where}: column {column}: a line break in {text!r}")
        return text
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


class TomogramsTable:
    """One row per tomogram (a pandas DataFrame of Python values, ``None`` for empty).

    Rows are addressed by position ``0 .. len-1``; ``rlnIndex`` holds the user-facing 1-based
    index that ``tomo_idx`` selections refer to. Build one with :meth:`read` or
    :meth:`from_records`; change it with :meth:`set_value` / :meth:`set_column`; save it with
    :meth:`write`.
    """

    def __init__(self, frame: pd.DataFrame, source: Optional[Path] = None, layout: str = "relion5"):
        if layout not in LAYOUTS:
            raise ValueError(f"STAR layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        self._df = frame
        self._source = source
        self._layout = layout

    # --- construction ----------------------------------------------------------------
    @classmethod
    def read(cls, path: PathLike) -> TomogramsTable:
        """Read a tomograms STAR file (our files, RELION-5 ``tomograms.star``, IsoNet2 files).

        Parameters
        ----------
        path : str or Path
            The STAR file.

        Returns
        -------
        TomogramsTable
            Its rows, checked.

        Raises
        ------
        FileNotFoundError
            The file is missing.
        ValueError
            Naming the file and the column/value: unreadable file, missing required columns or bad
            values.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"STAR file not found: {p}")
        import starfile  # lazily: only reading needs it

        check_loop_rows(p)
        try:
            blocks = starfile.read(p, always_dict=True, parse_as_string=sorted(STRING_COLUMNS))
        except Exception as exc:  # starfile/pandas raise many types for malformed text
            raise ValueError(f"{p} is not a readable STAR file: {exc}") from None
        block = _pick_block(p, blocks)
        if isinstance(block, Mapping):          # a single-row table written as key/value pairs
            block = pd.DataFrame([dict(block)])
        if not isinstance(block, pd.DataFrame) or len(block) == 0:
            raise ValueError(f"{p}: the tomograms table lists no tomograms")
        columns = [str(c) for c in block.columns]
        records = [dict(zip(columns, row)) for row in block.itertuples(index=False, name=None)]
        names = [rec.get(TOMO_NAME) for rec in records]
        program = TOMO_NAME in columns and any(is_empty(n) or looks_like_path(str(n)) for n in names)
        return cls(_build_frame(records, columns, str(p)), source=p,
                   layout="isonet2" if program else "relion5")

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]], *,
                     source: Optional[PathLike] = None) -> TomogramsTable:
        """Build a table from one dict per tomogram; values are checked as when reading.

        Parameters
        ----------
        records : sequence of mapping
            Column name -> value, ``None`` for empty (the string ``"None"`` is refused).
        source : str or Path, optional
            The STAR file that relative paths are resolved against (after the current directory).

        Returns
        -------
        TomogramsTable
            ``rlnIndex`` defaults to 1..n.
        """
        if len(records) == 0:
            raise ValueError("tomogram records: no tomograms given")
        columns: List[str] = []
        for rec in records:
            for key, value in rec.items():
                if key not in columns:
                    columns.append(key)
                _refuse_none_string(key, value)
        return cls(_build_frame([dict(r) for r in records], columns, "tomogram records"),
                   source=Path(source) if source is not None else None)

    # --- access ----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._df)

    @property
    def source(self) -> Optional[Path]:
        """The STAR file this table was read from (``None`` for built tables)."""
        return self._source

    @property
    def layout(self) -> str:
        """How :meth:`write` writes the table (:data:`LAYOUTS`): the read file's layout.

        Returns
        -------
        str
            ``relion5`` or ``isonet2``.
        """
        return self._layout

    @property
    def columns(self) -> List[str]:
        """The column names, in file order."""
        return [str(c) for c in self._df.columns]

    @property
    def dataframe(self) -> pd.DataFrame:
        """A copy of the table (object columns, ``None`` for empty)."""
        return self._df.copy()

    def has_column(self, column: str) -> bool:
        """Whether a column exists and holds a value in at least one row.

        Parameters
        ----------
        column : str
            STAR column name.

        Returns
        -------
        bool
            True when it does.
        """
        return column in self._df.columns and any(v is not None for v in self._df[column])

    def value(self, row: int, column: str, default: Any = None) -> Any:
        """One cell.

        Parameters
        ----------
        row : int
            0-based position in the table.
        column : str
            STAR column name.
        default : Any
            Returned when the cell is empty or the column absent.

        Returns
        -------
        Any
            The value.
        """
        self._check_row(row)
        if column not in self._df.columns:
            return default
        v = self._df.at[row, column]
        return default if v is None else v

    def set_value(self, row: int, column: str, value: Any) -> None:
        """Set one cell (``None`` empties it); the column is created when missing.

        Parameters
        ----------
        row : int
            0-based position in the table.
        column : str
            STAR column name.
        value : Any
            The value, checked as when reading.
        """
        self._check_row(row)
        _refuse_none_string(column, value)
        converted = _convert(column, value, self._where(row))
        _check_required(column, converted, self._where(row))
        if column not in self._df.columns:
            self._df[column] = pd.Series([None] * len(self._df), dtype=object)
        previous = self._df.at[row, column]
        self._df.at[row, column] = converted
        if column in (TOMO_NAME, INDEX):
            try:
                _check_unique(self._df, self._where_file())
            except ValueError:
                self._df.at[row, column] = previous
                raise

    def set_column(self, column: str, values: Sequence[Any]) -> None:
        """Set a whole column.

        Parameters
        ----------
        column : str
            STAR column name.
        values : sequence
            One value per row.
        """
        values = list(values)
        if len(values) != len(self):
            raise ValueError(f"column {column}: {len(values)} values for {len(self)} tomograms")
        for v in values:
            _refuse_none_string(column, v)
        converted = [_convert(column, v, self._where(i)) for i, v in enumerate(values)]
        for i, v in enumerate(converted):
            _check_required(column, v, self._where(i))
        if column in (TOMO_NAME, INDEX):
            _check_unique(pd.DataFrame({column: converted}), self._where_file())
        self._df[column] = pd.Series(converted, dtype=object)

    def set_path(self, row: int, column: str, path: Optional[PathLike]) -> None:
        """Record a file in a column: relative to the current directory when the file lies inside it
        (RELION's project-relative habit; commands run from the project folder), else absolute.
        :meth:`path` resolves what this records.

        Parameters
        ----------
        row : int
            0-based position in the table.
        column : str
            STAR column name.
        path : str or Path, optional
            The file; None empties the cell.
        """
        self.set_value(row, column, None if path is None else path_for_star(path))

    def required_path(self, row: int, column: str) -> Path:
        """:meth:`path` of a column that must be filled.

        Parameters
        ----------
        row : int
            0-based position in the table.
        column : str
            STAR column name.

        Returns
        -------
        Path
            Absolute.

        Raises
        ------
        ValueError
            Naming the tomogram, the column and the STAR file when it is empty.
        """
        p = self.path(row, column)
        if p is None:
            raise ValueError(f"tomogram {self.tomo_name(row)} of {self.source} has no {column}")
        return p

    def path(self, row: int, column: str) -> Optional[Path]:
        """The file named in a column as an absolute path.

        Absolute paths are returned as they are; a relative path is taken against the current
        directory when it exists there, else against the STAR file's folder when it exists there,
        else against the current directory.

        Parameters
        ----------
        row : int
            0-based position in the table.
        column : str
            STAR column name.

        Returns
        -------
        Path or None
            None when the cell is empty.
        """
        v = self.value(row, column)
        if v is None:
            return None
        p = Path(v).expanduser()
        if p.is_absolute():
            return p
        here = Path.cwd() / p
        if here.exists() or self._source is None:
            return here
        beside = self._source.parent.absolute() / p
        return beside if beside.exists() else here

    def tomo_name(self, row: int) -> str:
        """The tomogram's name.

        Parameters
        ----------
        row : int
            0-based position in the table.

        Returns
        -------
        str
            ``rlnTomoName``.
        """
        return self.value(row, TOMO_NAME)

    def index(self, row: int) -> int:
        """The tomogram's index.

        Parameters
        ----------
        row : int
            0-based position in the table.

        Returns
        -------
        int
            ``rlnIndex``.
        """
        return self.value(row, INDEX)

    def pixel_size_a(self, row: int) -> float:
        """The tomogram's pixel size.

        Parameters
        ----------
        row : int
            0-based position in the table.

        Returns
        -------
        float
            ``rlnPixelSize`` (Angstrom per voxel).
        """
        return self.value(row, PIXEL_SIZE)

    def microscope(self, row: int, needs_defocus: Optional[str] = None) -> Microscope:
        """Acquisition parameters of a row (the defaults of ``config.Microscope`` for empty cells,
        except the defocus where ``needs_defocus`` says what needs it).

        Parameters
        ----------
        row : int
            0-based position in the table.
        needs_defocus : str, optional
            What needs the defocus (e.g. ``deconv``): an empty ``rlnDefocus`` (or none in the file,
            as in a RELION-5 ``tomograms.star``) is then an error instead of the default.

        Returns
        -------
        Microscope
            Validated.

        Raises
        ------
        ValueError
            Naming the file and the tomogram.
        """
        if needs_defocus and self.value(row, DEFOCUS) is None:
            raise ValueError(f"{self._where(row)}: {needs_defocus} needs the defocus, but {DEFOCUS} is "
                             f"{'empty' if self.has_column(DEFOCUS) else 'not in the file'}; give it "
                             "with isonet2 prepare-star --defocus (or fill rlnDefocus, Angstrom)")
        kwargs: Dict[str, Any] = {"pixel_size_a": self.pixel_size_a(row)}
        for field, column in (("defocus_a", DEFOCUS), ("voltage_kv", VOLTAGE), ("cs_mm", CS),
                              ("amplitude_contrast", AC), ("tilt_min_deg", TILT_MIN),
                              ("tilt_max_deg", TILT_MAX)):
            v = self.value(row, column)
            if v is not None:
                kwargs[field] = v
        try:
            return Microscope(**kwargs).validate()
        except ValueError as exc:
            raise ValueError(f"{self._where(row)}: {exc}") from None

    def has_halves(self) -> bool:
        """Whether every tomogram has both an even and an odd half map.

        Returns
        -------
        bool
            True when they do.
        """
        return all(self.value(r, TOMO_HALF1) is not None and self.value(r, TOMO_HALF2) is not None
                   for r in range(len(self)))

    def rows_for(self, tomo_idx: Optional[Iterable[int]]) -> List[int]:
        """Row positions of the selected tomograms, in table order.

        Parameters
        ----------
        tomo_idx : iterable of int, optional
            rlnIndex values; None for all rows.

        Returns
        -------
        list of int
            0-based positions.

        Raises
        ------
        ValueError
            Naming the indices the table does not list.
        """
        if tomo_idx is None:
            return list(range(len(self)))
        wanted = set(int(i) for i in tomo_idx)
        indices = [self.index(r) for r in range(len(self))]
        unknown = sorted(wanted - set(indices))
        if unknown:
            raise ValueError(f"tomo_idx: no tomogram with rlnIndex {', '.join(map(str, unknown))} "
                             f"in {self._where_file()} (it lists {', '.join(map(str, indices))})")
        return [r for r, i in enumerate(indices) if i in wanted]

    def input_column(self, row: int, preferred: str, fallbacks: Sequence[str] = ()) -> str:
        """The first of ``preferred, *fallbacks`` holding a value in a row.

        Parameters
        ----------
        row : int
            0-based position in the table.
        preferred : str
            STAR column name.
        fallbacks : sequence of str
            Further columns, in order.

        Returns
        -------
        str
            The column.

        Raises
        ------
        ValueError
            Naming the tomogram and the columns when none does.
        """
        for column in (preferred, *fallbacks):
            if self.value(row, column) is not None:
                if column != preferred:
                    logger.info("%s: %s is empty, using %s", self.tomo_name(row), preferred, column)
                return column
        raise ValueError(f"{self._where(row)}: no map in column "
                         f"{' or '.join((preferred, *fallbacks))}")

    def to_records(self) -> List[Dict[str, Any]]:
        """The rows as dicts.

        Returns
        -------
        list of dict
            One per row, column -> value, empty cells left out.
        """
        return [{c: v for c, v in rec.items() if v is not None}
                for rec in self._df.to_dict(orient="records")]

    # --- writing ---------------------------------------------------------------------
    def to_star_text(self, layout: Optional[str] = None) -> str:
        """The ``data_global`` STAR text of the table (module documentation).

        Parameters
        ----------
        layout : str, optional
            One of :data:`LAYOUTS`; None: the table's own (:attr:`layout`).

        Returns
        -------
        str
            The file's text.

        Raises
        ------
        ValueError
            For an unknown layout, or (``isonet2``) a tomogram whose name its map's path would not
            give back.
        """
        layout = layout or self._layout
        if layout not in LAYOUTS:
            raise ValueError(f"STAR layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
        records = [dict(rec) for rec in self._df.to_dict(orient="records")]
        for rec in records:
            if rec.get(TS_PIXEL_SIZE) is None:
                rec[TS_PIXEL_SIZE] = rec[PIXEL_SIZE] / (rec.get(TOMO_BINNING) or 1.0)
            for column, default in ((VOLTAGE, Microscope.voltage_kv), (CS, Microscope.cs_mm),
                                    (AC, Microscope.amplitude_contrast), (HAND, DEFAULT_HAND)):
                if rec.get(column) is None:
                    rec[column] = default
        present = set(self.columns) | {TS_PIXEL_SIZE, VOLTAGE, CS, AC, HAND}
        if layout == "isonet2":
            self._program_records(records)
            present |= set(ISONET2_COLUMNS)
        ordered = [c for c in COLUMN_ORDER if c in present] + \
                  [c for c in self.columns if c not in COLUMN_ORDER]
        columns = [c for c in ordered if c in ISONET2_COLUMNS and layout == "isonet2"
                   or any(rec.get(c) is not None for rec in records)]
        empty = "None" if layout == "isonet2" else '""'
        lines = [f"# written by isonet2core {__version__} ({layout} layout)", "",
                 f"# version {STAR_VERSION}", "", f"data_{GLOBAL_BLOCK}", "", "loop_"]
        lines += [f"_{c} #{i}" for i, c in enumerate(columns, start=1)]
        for rec in records:
            lines.append("  ".join(empty if rec.get(c) is None else _format_value(c, rec[c])
                                   for c in columns))
        return "\n".join(lines) + "\n\n"

    def _program_records(self, records: List[Dict[str, Any]]) -> None:
        """Records in the IsoNet2 program's layout: rlnTomoName the full map (the name must read
        back from it, or from the first half map where there is none), tilt range and
        subtomograms per tomogram filled with the defaults its commands would need."""
        for i, rec in enumerate(records):
            source = rec.get(TOMO_FULL) or rec.get(TOMO_HALF1)
            if source is None or tomo_name_from_path(source) != rec[TOMO_NAME]:
                raise ValueError(f"{self._where(i)}: in the IsoNet2 layout the name is read back from "
                                 f"the map path ({source}, which gives "
                                 f"{tomo_name_from_path(source) if source else 'nothing'}); write the "
                                 "RELION-5 layout instead")
            rec[TOMO_NAME] = rec.get(TOMO_FULL)
            for column, default in ((TILT_MIN, Microscope.tilt_min_deg), (TILT_MAX, Microscope.tilt_max_deg)):
                if rec.get(column) is None:
                    rec[column] = default
            if rec.get(N_SUBTOMO) is None and rec.get(BOX_FILE) is None:
                rec[N_SUBTOMO] = default_subtomos_per_tomogram(len(records))

    def write(self, path: PathLike, layout: Optional[str] = None) -> Path:
        """Write the table atomically (temporary file in the same folder, then ``os.replace``); the
        folder is created when missing.

        Parameters
        ----------
        path : str or Path
            The STAR file.
        layout : str, optional
            One of :data:`LAYOUTS`; None: the table's own (:attr:`layout`).

        Returns
        -------
        Path
            ``Path(path)``.
        """
        return atomic.write_text(path, self.to_star_text(layout))

    # --- helpers ---------------------------------------------------------------------
    def _check_row(self, row: int) -> None:
        if not 0 <= row < len(self._df):
            raise IndexError(f"row {row} out of range for {len(self._df)} tomograms")

    def _where_file(self) -> str:
        return str(self._source) if self._source is not None else "tomograms table"

    def _where(self, row: int) -> str:
        name = self._df.at[row, TOMO_NAME] if TOMO_NAME in self._df.columns else None
        return f"{self._where_file()}: tomogram {name or row + 1}"


RowKey = Union[str, Tuple[str, int]]
"""A row of a STAR file on disk: its ``rlnTomoName``, or ``(rlnTomoName, rlnIndex)``."""


def update_rows(path: PathLike, updates: Mapping[RowKey, Mapping[str, Any]]) -> TomogramsTable:
    """Change some cells of some rows of a STAR file without losing another command's changes.

    Under the STAR's lock (:func:`isonet2core.io.locks.star_lock`) the table is read again from
    disk, only the given cells of the given rows change, and it is written atomically: two
    commands that update one STAR at once (``deconv`` and ``make-mask``) both keep their
    columns. Every command that records its outputs in a STAR it was given goes through here.

    Parameters
    ----------
    path : str or Path
        The STAR file.
    updates : mapping
        Row (``rlnTomoName``, or ``(rlnTomoName, rlnIndex)``) -> {column: value}; ``None``
        empties a cell, a ``Path`` is recorded as :meth:`TomogramsTable.set_path` does.

    Returns
    -------
    TomogramsTable
        The table as written.

    Raises
    ------
    ValueError
        Naming the STAR file and the tomogram when the file no longer lists that row (or lists
        it under another rlnIndex): it was changed while the command ran.
    """
    p = Path(path)
    with locks.star_lock(p):
        table = TomogramsTable.read(p)
        names = [table.tomo_name(r) for r in range(len(table))]
        for key, cells in updates.items():
            name, index = (key, None) if isinstance(key, str) else key
            changed = f"; {', '.join(cells)} not recorded (was the STAR file changed while this " \
                      "command ran?)"
            if name not in names:
                raise ValueError(f"{p} no longer lists tomogram {name}{changed}")
            row = names.index(name)
            if index is not None and table.index(row) != index:
                raise ValueError(f"{p}: tomogram {name} now has {INDEX} {table.index(row)}, "
                                 f"not {index}{changed}")
            for column, value in cells.items():
                if isinstance(value, os.PathLike):
                    table.set_path(row, column, value)
                else:
                    table.set_value(row, column, value)
        table.write(p)
    return table


def _star_fields(line: str) -> List[str]:
    """The fields of one STAR data line (quoted values, ``""`` among them, are one field)."""
    try:
        return shlex.split(line, posix=True)
    except ValueError:          # an unbalanced quote inside a value
        return line.split()


def check_loop_rows(path: PathLike) -> None:
    """Refuse a STAR file any of whose loop rows has more or fewer fields than its loop has
    columns (a truncated or hand-edited file): a reader would fill the missing cells with
    defaults, and the next rewrite would make the damage permanent.

    Parameters
    ----------
    path : str or Path
        The STAR file.

    Raises
    ------
    ValueError
        Naming the file, the line number, the fields found and the columns expected.
    """
    p = Path(path)
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ValueError(f"{p} cannot be read: {exc.strerror or exc}") from None
    columns, in_loop = 0, False
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("data_") or line == "loop_":
            columns, in_loop = 0, line == "loop_"
        elif in_loop and line.startswith("_"):
            columns += 1
        elif in_loop and columns:
            found = len(_star_fields(line))
            if found != columns:
                raise ValueError(f"{p}, line {number}: {found} field(s) where the table has {columns} "
                                 "columns (a truncated or broken row); repair or rewrite the STAR file")


def _pick_block(path: Path, blocks: Mapping[str, Any]):
    """The ``data_global`` block, else the unnamed ``data_`` block (IsoNet2), else the only one."""
    if GLOBAL_BLOCK in blocks:
        return blocks[GLOBAL_BLOCK]
    if "" in blocks:
        return blocks[""]
    if len(blocks) == 1:
        return next(iter(blocks.values()))
    if not blocks:
        raise ValueError(f"{path} is not a STAR file: no data_ block found")
    names = ", ".join(f"data_{k}" for k in blocks)
    raise ValueError(f"{path}: no data_global block (found {names})")


def _refuse_none_string(column: str, value: Any) -> None:
    if isinstance(value, str) and value.strip().lower() == "none":
        raise ValueError(f"column {column}: use None for an empty value, not the string {value!r}")


def _check_required(column: str, value: Any, where: str) -> None:
    """Cells every row needs: a name, an index and a positive pixel size."""
    if column in (TOMO_NAME, INDEX, PIXEL_SIZE) and value is None:
        raise ValueError(f"{where}: column {column} cannot be empty")
    if column == PIXEL_SIZE and value <= 0:
        raise ValueError(f"{where}: column {PIXEL_SIZE}: pixel size must be positive, got {value}")


def _build_frame(records: List[Dict[str, Any]], columns: List[str], where: str) -> pd.DataFrame:
    """Convert, migrate the IsoNet2 layout, derive and validate; the frame of a table."""
    rows: List[Dict[str, Any]] = []
    for i, rec in enumerate(records):
        label = f"{where}: row {i + 1}"
        rows.append({c: _convert(c, rec.get(c), label) for c in columns})
    for c in (TOMO_NAME, TOMO_FULL, PIXEL_SIZE, INDEX):
        if c not in columns:
            columns.append(c)
            for row in rows:
                row[c] = None
    for i, row in enumerate(rows):
        label = f"{where}: row {i + 1}"
        name = row[TOMO_NAME]
        if name is not None and looks_like_path(name):
            # IsoNet2 program layout: the map path sits in rlnTomoName
            if row[TOMO_FULL] is None:
                row[TOMO_FULL] = name
            row[TOMO_NAME] = tomo_name_from_path(name)
        elif name is None:
            source = row[TOMO_FULL] or row.get(TOMO_HALF1)
            if source is None:
                raise ValueError(f"{label}: {TOMO_NAME} is empty and there is no map "
                                 f"({TOMO_FULL} or {TOMO_HALF1}) to name the tomogram after")
            row[TOMO_NAME] = tomo_name_from_path(source)
        label = f"{where}: tomogram {row[TOMO_NAME]}"
        if row[PIXEL_SIZE] is None:
            ts = row.get(TS_PIXEL_SIZE)
            if ts is None:
                raise ValueError(f"{label}: no pixel size (column {PIXEL_SIZE} or {TS_PIXEL_SIZE})")
            row[PIXEL_SIZE] = ts * (row.get(TOMO_BINNING) or 1.0)
        _check_required(PIXEL_SIZE, row[PIXEL_SIZE], label)
        half1, half2 = row.get(TOMO_HALF1), row.get(TOMO_HALF2)
        if (half1 is None) != (half2 is None):
            given, missing = (TOMO_HALF1, TOMO_HALF2) if half2 is None else (TOMO_HALF2, TOMO_HALF1)
            raise ValueError(f"{label}: {given} is given but {missing} is empty "
                             "(give both halves or neither)")
        if row[TOMO_FULL] is None and half1 is None:
            raise ValueError(f"{label}: no map (columns {TOMO_FULL}, or {TOMO_HALF1} and {TOMO_HALF2})")
    indices = [row[INDEX] for row in rows]
    if all(i is None for i in indices):
        for i, row in enumerate(rows):
            row[INDEX] = i + 1
    elif any(i is None for i in indices):
        raise ValueError(f"{where}: column {INDEX} is empty in some rows")
    frame = pd.DataFrame({c: pd.Series([row[c] for row in rows], dtype=object) for c in columns})
    _check_unique(frame, where)
    return frame


def _check_unique(frame: pd.DataFrame, where: str) -> None:
    for column in (TOMO_NAME, INDEX):
        if column not in frame.columns:
            continue
        values = list(frame[column])
        dupes = sorted({str(v) for v in values if v is not None and values.count(v) > 1})
        if dupes:
            raise ValueError(f"{where}: column {column}: duplicate values {', '.join(dupes)} "
                             "(each tomogram needs its own)")


def _format_value(column: str, value: Any) -> str:
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if text == "" or any(ch.isspace() for ch in text) or text[0] in "#_'\"" \
            or text.lower().startswith(("data_", "loop_")):
        if '"' in text:
            raise ValueError(f"column {column}: cannot write {text!r} (spaces and quotes)")
        return f'"{text}"'
    return text
