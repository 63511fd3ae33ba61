"""Scipion objects <-> the IsoNet2 tomograms STAR file (the one contract with the core).

Everything the protocols need to turn Scipion inputs into rows of ``tomograms.star`` lives
here: tsId matching, even/odd recognition of linked half maps, the microscope values from the
acquisition, and reading the output columns back (the defocus at 0 degrees and the enabled
tilt range from CTF estimations: :mod:`isonet2scipion.ctf_inputs`).

The file the core runs on (``extra/isonet2_tomograms.star``) is written by the core's own writer
(:meth:`isonet2core.io.star.TomogramsTable.write`), in the layout the official IsoNet2 program runs as
it is (``isonet2``: ``rlnTomoName`` the full map's path, ``None`` for empty cells) when every
tomogram's name reads back from its map's file name, else in the RELION-5 layout (``rlnTomoName``
the tsId), which the core reads too (:func:`run_layout`). The plugin reads its columns back and
merges the per-tomogram steps' outputs into it with ``emtable``, the STAR library of Scipion's
plugins (:func:`read_column`, :func:`merge_columns`: cells are kept as written). The RELION-5
``tomograms.star`` for reliontomo / RELION-5 is :mod:`isonet2scipion.relion_export`.

Even/odd recognition (``order_halves``): Scipion stores a tomogram's two half maps as a list
without saying which is which, and producers differ (IMOD and AreTomo store ``[odd, even]``,
others sort by file name). With ``HALF_ORDER_AUTO`` the two paths are compared component by
component from the file name up, and the first components that differ decide when one carries
an even tag and the other an odd tag, as :func:`isonet2core.io.input_names.half_tag` reads them
(``EVN``/``even``/``half1`` vs ``ODD``/``odd``/``half2``, any case, delimited by ``_ - .`` or
the ends; e.g. ``TS_01_even.mrc`` / ``TS_01_odd.mrc``, ``TS_01_EVN_Vol.mrc`` /
``TS_01_ODD_Vol.mrc``, ``even/TS_01.mrc`` / ``odd/TS_01.mrc``, ``x_half1.mrc`` /
``x_half2.mrc``). When the names carry no such tags (symbolic links are followed once), the
list is read as ``[odd, even]``, the order IMOD and AreTomo write. The form option "halfOrder" forces ``[odd, even]`` or ``[even, odd]``.
"""
from __future__ import annotations

import dataclasses
import io
import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from emtable import Table

from isonet2core.config import check_tilt_range
from isonet2core.io import atomic, input_names, star
from isonet2core.training.budget import check_fits
from isonet2scipion.constants import HALF_ORDER_AUTO, HALF_ORDER_EVEN_ODD, HALF_ORDER_ODD_EVEN
from isonet2scipion.ctf_inputs import by_plain_ts_id, plain_ts_id


# ------------------------------------------------------------------ even / odd
def _component_tags(a: str, b: str) -> Optional[Tuple[str, str]]:
    """The even/odd tags (:func:`isonet2core.io.input_names.half_tag`) of the first path components in
    which ``a`` and ``b`` differ, when they are one even and one odd."""
    for pa, pb in zip(reversed(Path(a).parts), reversed(Path(b).parts)):
        if pa == pb:
            continue
        ta = input_names.half_tag(_stem(pa))
        tb = input_names.half_tag(_stem(pb))
        if ta and tb and ta != tb:
            return ta, tb
    return None


def _stem(name: str) -> str:
    for suffix in input_names.MAP_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def order_halves(paths: Sequence[str], order: int = HALF_ORDER_AUTO) -> Tuple[str, str]:
    """``(even, odd)`` from the two linked half-map paths of a tomogram (see module doc).

    :raises ValueError: when ``paths`` does not hold exactly two different paths.
    """
    paths = [str(p) for p in paths]
    if len(paths) != 2 or paths[0] == paths[1]:
        raise ValueError(f"expected two different half maps, got {paths}")
    if order == HALF_ORDER_EVEN_ODD:
        return paths[0], paths[1]
    if order == HALF_ORDER_ODD_EVEN:
        return paths[1], paths[0]
    tags = _component_tags(paths[0], paths[1])
    if tags is None:
        real = [os.path.realpath(p) for p in paths]
        if real[0] != real[1]:
            tags = _component_tags(real[0], real[1])
    if tags is not None:
        return (paths[0], paths[1]) if tags[0] == "even" else (paths[1], paths[0])
    return paths[1], paths[0]  # no tags: [odd, even] as IMOD and AreTomo store them


# ------------------------------------------------------------------ tsId matching
@dataclass(frozen=True)
class TsIdMatch:
    """Result of pairing two collections by tsId."""
    pairs: Dict[str, str]   # reference tsId -> other tsId
    missing: List[str]      # reference tsIds without a partner
    extra: List[str]        # other tsIds that no reference item uses


def match_by_ts_id(reference: Iterable[str], other: Iterable[str],
                   tolerate_half_tags: bool = False) -> TsIdMatch:
    """Pair tsIds exactly; with ``tolerate_half_tags`` the ones left over are paired again
    by their plain tsIds (``TS_01_even`` and ``TS_01_odd`` -> ``TS_01``, by
    :func:`isonet2scipion.ctf_inputs.plain_ts_id`) when that gives a unique partner."""
    reference = list(reference)
    other = list(other)
    other_set = set(other)
    pairs = {r: r for r in reference if r in other_set}
    if tolerate_half_tags:
        left = [o for o in other if o not in pairs.values()]
        by_key: Dict[str, List[str]] = {}
        for o in left:
            by_key.setdefault(plain_ts_id(o), []).append(o)
        for r in reference:
            if r in pairs:
                continue
            candidates = by_key.get(plain_ts_id(r), [])
            if len(candidates) == 1:
                pairs[r] = candidates.pop()
    used = set(pairs.values())
    return TsIdMatch(pairs=pairs, missing=[r for r in reference if r not in pairs],
                     extra=[o for o in other if o not in used])


# ------------------------------------------------------------------ rows of the STAR
TILT_FROM_FORM = "form"
TILT_FROM_TILT_SERIES = "enabled tilts of the tilt series"
TILT_FROM_ACQUISITION = "acquisition"
TS_PIXEL_FROM_TOMOGRAM = "the tomogram's (no tilt series: binning 1)"


@dataclass(frozen=True)
class TomoEntry:
    """One row of tomograms.star. Paths are absolute; None means "not given"."""
    ts_id: str
    full: Optional[str]
    even: Optional[str]
    odd: Optional[str]
    pixel_size_a: float
    voltage_kv: float
    cs_mm: float
    amplitude_contrast: float
    tilt_min_deg: float
    tilt_max_deg: float
    defocus_a: Optional[float] = None
    mask: Optional[str] = None
    tilt_source: str = TILT_FROM_ACQUISITION   # where the tilt range came from (summary)
    ts_pixel_size_a: Optional[float] = None    # of the tilt series; None: the tomogram's
    ts_pixel_source: str = TS_PIXEL_FROM_TOMOGRAM

    @property
    def tilt_series_pixel_size_a(self) -> float:
        """The tilt series' pixel size (Å), the tomogram's when unknown (binning 1)."""
        return self.ts_pixel_size_a or self.pixel_size_a

    @property
    def binning(self) -> float:
        """Tomogram pixel / tilt-series pixel (RELION-5's ``rlnTomoTomogramBinning``)."""
        return self.pixel_size_a / self.tilt_series_pixel_size_a

    @property
    def has_halves(self) -> bool:
        return self.even is not None and self.odd is not None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def entries_signature(entries: Sequence[TomoEntry], **options) -> str:
    """A stable JSON string of the entries and options: used as step arguments, so that
    Continue re-runs a step exactly when something it depends on changed."""
    return json.dumps({"entries": [e.to_dict() for e in entries], "options": options},
                      sort_keys=True)


def entries_from_signature(signature: str) -> List[TomoEntry]:
    """The entries encoded by :func:`entries_signature`."""
    return [TomoEntry(**d) for d in json.loads(signature)["entries"]]


def entry_records(entries: Sequence[TomoEntry]) -> List[dict]:
    """The STAR rows (column name -> value) of ``entries``; rlnIndex counts from 1."""
    records = []
    for i, e in enumerate(entries, start=1):
        rec = {star.INDEX: i, star.TOMO_NAME: e.ts_id, star.PIXEL_SIZE: e.pixel_size_a,
               star.TS_PIXEL_SIZE: e.tilt_series_pixel_size_a, star.TOMO_BINNING: e.binning,
               star.VOLTAGE: e.voltage_kv,
               star.CS: e.cs_mm, star.AC: e.amplitude_contrast,
               star.TILT_MIN: e.tilt_min_deg, star.TILT_MAX: e.tilt_max_deg}
        if e.full is not None:
            rec[star.TOMO_FULL] = e.full
        if e.has_halves:
            rec[star.TOMO_HALF1] = e.even
            rec[star.TOMO_HALF2] = e.odd
        if e.defocus_a is not None:
            rec[star.DEFOCUS] = e.defocus_a
        if e.mask is not None:
            rec[star.MASK] = e.mask
        records.append(rec)
    return records


def run_layout(entries: Sequence[TomoEntry]) -> str:
    """The layout of the STAR the core runs on: ``isonet2`` (what the official IsoNet2 program
    runs as it is) when every tomogram's name reads back from its map's file name (the
    program names a tomogram after its file; e.g. IMOD's ``TS_01/TS_01.mrc``), else
    ``relion5`` (``rlnTomoName`` the tsId; the core reads it, the official program does not)."""
    for e in entries:
        source = e.full or e.even
        if source is None or input_names.tomo_name_from_path(source) != e.ts_id:
            return "relion5"
    return "isonet2"


def write_tomograms_star(entries: Sequence[TomoEntry], path, layout: Optional[str] = None) -> Path:
    """Write ``entries`` to ``path`` (atomic, by isonet2core.io.star) in ``layout``
    (None: :func:`run_layout`)."""
    if not entries:
        raise ValueError(f"no tomograms to write to {path}")
    table = star.TomogramsTable.from_records(entry_records(entries))
    table.write(path, layout or run_layout(entries))
    return Path(path)


def _read_table(star_path) -> Table:
    """The ``data_global`` loop of a STAR written by the core, every cell a string as written."""
    table = Table()
    with open(star_path) as f:
        reader = Table.Reader(f, tableName=star.GLOBAL_BLOCK, guessType=False)
        # emtable picks its splitter from the first row only: a quoted path (white space) in
        # a later row needs shlex too
        reader._split = shlex.split
        table._columns, table.Row, table._rows = reader._columns, reader.Row, reader.readAll()
    return table


def _cell(row, column: str) -> Optional[str]:
    value = row.get(column) if row.hasColumn(column) else None
    return None if value is None or star.is_empty(value) else value


def _row_name(row) -> str:
    """A row's tomogram name by the core's rule: ``rlnTomoName`` when it is a name; in the
    IsoNet2 layout, from the map path it holds (or from the first half map when empty)."""
    name = _cell(row, star.TOMO_NAME)
    if name is not None and not input_names.looks_like_path(name):
        return name
    source = name or _cell(row, star.TOMO_FULL) or _cell(row, star.TOMO_HALF1)
    if source is None:
        raise ValueError(f"a row without a tomogram name or map: {row}")
    return input_names.tomo_name_from_path(source)


def _resolve(value: str, star_path) -> Path:
    """A path cell as the core resolves it: absolute as it is; relative against the current
    directory when it exists there, else beside the STAR when it exists there."""
    p = Path(value).expanduser()
    if p.is_absolute():
        return p
    here = Path.cwd() / p
    beside = Path(star_path).parent.absolute() / p
    return beside if not here.exists() and beside.exists() else here


def read_column(star_path, column: str) -> Dict[str, Optional[Path]]:
    """``{tomogram name: path in column}`` of a STAR written by the core (None where empty or
    where the column is absent), read with emtable."""
    result = {}
    for row in _read_table(star_path):
        value = _cell(row, column)
        result[_row_name(row)] = None if value is None else _resolve(value, star_path)
    return result


def _star_text_value(value: str) -> str:
    """A cell as it is written: quoted when empty or holding white space (emtable writes
    strings as they are, and reads quoted ones back without the quotes)."""
    if value == "" or any(ch.isspace() for ch in value):
        if '"' in value:
            raise ValueError(f"cannot write {value!r} to a STAR (white space and quotes)")
        return f'"{value}"'
    return value


def merge_columns(star_path, updates: Dict[str, Dict[str, str]]) -> None:
    """Set ``updates[tomogram name][column] = value`` in the STAR at ``star_path`` (rewritten
    atomically, every other cell as it was written): gathers what per-tomogram steps wrote into
    their own STAR copies. A new column is filled with the file's empty token (``None`` in the
    IsoNet2 layout, ``""`` in the RELION-5 layout)."""
    table = _read_table(star_path)
    rows = list(table)
    names = [_row_name(row) for row in rows]
    program = any(_cell(r, star.TOMO_NAME) is None
                  or input_names.looks_like_path(_cell(r, star.TOMO_NAME)) for r in rows)
    empty = "None" if program else '""'
    new = [c for c in dict.fromkeys(c for cols in updates.values() for c in cols)
           if not table.hasColumn(c)]
    if new:
        table.addColumns(*[f"{c}={empty}" for c in new])
    rows = list(table)
    for name, columns in updates.items():
        i = names.index(name)
        rows[i] = rows[i]._replace(**{c: str(v) for c, v in columns.items()})
    for i, row in enumerate(rows):
        table[i] = row._replace(**{c: _star_text_value(v) for c, v in row._asdict().items()})
    text = io.StringIO()
    text.write(f"# merged by isonet2scipion\n\n# version {star.STAR_VERSION}\n")
    table.writeStar(text, tableName=star.GLOBAL_BLOCK)
    atomic.write_text(star_path, text.getvalue())


# ------------------------------------------------------------------ Scipion objects -> entries
def tomograms_by_ts_id(tomo_set, label: str) -> Tuple[Dict[str, object], List[str]]:
    """``{tsId: clone}`` of a set of tomograms (or masks), and errors for items without a
    tsId or with a tsId used twice."""
    items, errors, dup = {}, [], []
    for tomo in tomo_set.iterItems():
        ts_id = tomo.getTsId()
        if not ts_id:
            errors.append(f"{label}: item {tomo.getObjId()} ({tomo.getFileName()}) has no tsId")
            continue
        if ts_id in items:
            dup.append(ts_id)
            continue
        items[ts_id] = tomo.clone()
    if dup:
        errors.append(f"{label}: tsIds used more than once: {', '.join(sorted(set(dup)))}")
    return items, errors


def shape_zyx(tomo) -> Optional[Tuple[int, int, int]]:
    """``(z, y, x)`` voxels of a tomogram's file (its header), or None when it cannot be read."""
    dim = tomo.getDim()
    return None if dim is None else (int(dim[2]), int(dim[1]), int(dim[0]))


def cube_errors(tomos: Dict[str, object], cube_size: int) -> List[str]:
    """One error per tomogram (``{tsId: Tomogram}``) in which a training cube does not fit,
    by the rule the core applies (:func:`isonet2core.training.budget.check_fits`)."""
    errors = []
    for ts_id, tomo in tomos.items():
        shape = shape_zyx(tomo)
        if shape is None:
            errors.append(f"tomogram {ts_id}: its file {tomo.getFileName()} cannot be read")
            continue
        try:
            check_fits(shape, cube_size, ts_id)
        except ValueError as exc:
            errors.append(str(exc))
    return errors


def mask_mismatches(tomos: Dict[str, object], masks: Dict[str, object]) -> List[str]:
    """Errors naming each mask (matched by tsId) whose shape or sampling differs from its
    tomogram's: the core samples cubes with mask and tomogram voxel for voxel."""
    errors = []
    match = match_by_ts_id(tomos, masks, tolerate_half_tags=True)
    for ts_id, mask_id in match.pairs.items():
        tomo, mask = tomos[ts_id], masks[mask_id]
        t_shape, m_shape = shape_zyx(tomo), shape_zyx(mask)
        if m_shape is None:
            errors.append(f"mask of {ts_id}: its file {mask.getFileName()} cannot be read")
        elif t_shape is not None and t_shape != m_shape:
            errors.append(f"mask of {ts_id} has shape {m_shape} (z, y, x) but the tomogram has "
                          f"{t_shape}: make the mask from this tomogram")
        t_px, m_px = tomo.getSamplingRate(), mask.getSamplingRate()
        if t_px and m_px and abs(t_px - m_px) > 1e-3 * t_px:
            errors.append(f"mask of {ts_id} has a sampling of {m_px:g} Å/px but the tomogram "
                          f"{t_px:g} Å/px")
    return errors


def _absolute(path: Optional[str]) -> Optional[str]:
    return None if path is None else os.path.abspath(path)


def _names(ids: Iterable[str], limit: int = 10) -> str:
    ids = sorted(ids)
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def collect_entries(*, full: Optional[Dict[str, object]] = None,
                    even: Optional[Dict[str, object]] = None,
                    odd: Optional[Dict[str, object]] = None,
                    halves: str = "optional",
                    half_order: int = HALF_ORDER_AUTO,
                    defocus: Optional[Dict[str, float]] = None,
                    defocus_a: Optional[float] = None,
                    need_defocus: bool = False,
                    tilt_range: Optional[Tuple[float, float]] = None,
                    tilt_ranges: Optional[Dict[str, Tuple[float, float]]] = None,
                    tilt_sources: Optional[Dict[str, str]] = None,
                    ts_pixel_sizes: Optional[Dict[str, float]] = None,
                    ts_pixel_sources: Optional[Dict[str, str]] = None,
                    masks: Optional[Dict[str, object]] = None,
                    set_acquisition=None) -> Tuple[List[TomoEntry], List[str]]:
    """Rows of the STAR from Scipion tomograms, and every error found, each naming its items.

    Every collection is matched by plain tsId (:func:`isonet2scipion.ctf_inputs.plain_ts_id`),
    and the rows carry the plain tsId: separate even/odd sets named ``TS_01_even`` /
    ``TS_01_odd`` give the row ``TS_01`` and meet the CTF estimation of ``TS_01``.

    :param full: ``{tsId: Tomogram}``; the reference when given (outputs follow its items).
        Its linked half maps are used when ``even``/``odd`` are None.
    :param even, odd: ``{tsId: Tomogram}`` of separate half sets, paired by plain tsId;
        ``even`` is the reference when ``full`` is None.
    :param halves: ``"required"`` (Noise2Noise), ``"optional"`` or ``"none"`` (not used).
    :param defocus: ``{tsId: defocus at 0 degrees in A}`` from a CTF set.
    :param defocus_a: defocus for tomograms that the CTF set does not cover (None: no fallback).
    :param need_defocus: an error names the tomograms without any defocus.
    :param tilt_range: ``(tilt_min_deg, tilt_max_deg)`` given in the form: overrides all.
    :param tilt_ranges: ``{tsId: (tilt_min_deg, tilt_max_deg)}`` of the enabled tilts of the
        matching tilt series; used before the acquisition.
    :param tilt_sources: ``{tsId: where that range came from}`` (summary); default
        :data:`TILT_FROM_TILT_SERIES`.
    :param ts_pixel_sizes: ``{tsId: pixel size (Å) of the tilt series it was reconstructed
        from}``; without one the tomogram's (binning 1).
    :param ts_pixel_sources: ``{tsId: where that pixel size came from}`` (summary).
    :param masks: ``{tsId: TomoMask}``; every tomogram needs one when given.
    :param set_acquisition: the set's TomoAcquisition, used where an item has none.
    """
    separate = even is not None or odd is not None
    if separate and (even is None or odd is None):
        return [], ["give both the even and the odd set"]
    full, even, odd, masks, plain_errors = _plain_keys(full=full, even=even, odd=odd, masks=masks)
    reference = full if full is not None else even
    if not reference:
        return [], ["the input set holds no tomograms"]
    half_paths, errors = ({}, []) if halves == "none" else _half_paths(
        full, even, odd, reference, halves, half_order)
    errors = plain_errors + errors
    mask_match = match_by_ts_id(reference, masks) if masks is not None else None
    if mask_match is not None and mask_match.missing:
        errors.append(f"tomograms without a mask: {_names(mask_match.missing)}")
    if tilt_range is not None:
        try:
            check_tilt_range(*tilt_range)
        except ValueError as exc:
            errors.append(f"tilt range: {exc}")
    problems: Dict[str, List[str]] = {"acquisition": [], "tilt": [], "bad tilt": [], "defocus": []}
    entries: List[TomoEntry] = []
    for ts_id, tomo in reference.items():
        acq = tomo.getAcquisition() if tomo.getAcquisition() is not None else set_acquisition
        if acq is None or not acq.getVoltage():
            problems["acquisition"].append(ts_id)
            continue
        tilt = _tilt_of(ts_id, acq, tilt_range, tilt_ranges, tilt_sources, problems)
        if tilt is None:
            continue
        d = (defocus or {}).get(ts_id, defocus_a)
        if d is None and need_defocus:
            problems["defocus"].append(ts_id)
        even_path, odd_path = half_paths.get(ts_id, (None, None))
        mask = None
        if mask_match is not None and masks is not None and ts_id in mask_match.pairs:
            mask = masks[mask_match.pairs[ts_id]].getFileName()
        entries.append(TomoEntry(
            ts_id=ts_id,
            full=_absolute(tomo.getFileName()) if full is not None else None,
            even=_absolute(even_path), odd=_absolute(odd_path),
            pixel_size_a=float(tomo.getSamplingRate()),
            voltage_kv=float(acq.getVoltage()),
            cs_mm=float(acq.getSphericalAberration()),
            amplitude_contrast=float(acq.getAmplitudeContrast()),
            tilt_min_deg=float(tilt[0]), tilt_max_deg=float(tilt[1]),
            defocus_a=None if d is None else float(d), mask=_absolute(mask),
            tilt_source=tilt[2], **_ts_pixel(ts_id, ts_pixel_sizes, ts_pixel_sources)))
    return entries, errors + _problem_messages(problems)


def _ts_pixel(ts_id: str, sizes: Optional[Dict[str, float]],
              sources: Optional[Dict[str, str]]) -> dict:
    """The ``ts_pixel_size_a`` / ``ts_pixel_source`` fields of one entry."""
    size = (sizes or {}).get(ts_id)
    if not size:
        return {}
    return {"ts_pixel_size_a": float(size),
            "ts_pixel_source": (sources or {}).get(ts_id, "tilt series")}


def _half_paths(full, even, odd, reference, halves: str,
                half_order: int) -> Tuple[Dict[str, Tuple[str, str]], List[str]]:
    """``{tsId: (even path, odd path)}`` from separate half sets (paired by tsId) or from the
    half maps linked to the reference's tomograms, and the errors found."""
    errors: List[str] = []
    half_paths: Dict[str, Tuple[str, str]] = {}
    if even is not None and odd is not None:
        if full is not None:
            m_even = match_by_ts_id(full, even, tolerate_half_tags=True)
            m_odd = match_by_ts_id(full, odd, tolerate_half_tags=True)
            for ts_id in full:
                if ts_id in m_even.pairs and ts_id in m_odd.pairs:
                    half_paths[ts_id] = (even[m_even.pairs[ts_id]].getFileName(),
                                         odd[m_odd.pairs[ts_id]].getFileName())
            missing = sorted(set(m_even.missing) | set(m_odd.missing))
            if missing:
                errors.append(f"tomograms without an even and odd partner: {_names(missing)}")
        else:
            m = match_by_ts_id(even, odd, tolerate_half_tags=True)
            for ts_id, other in m.pairs.items():
                half_paths[ts_id] = (even[ts_id].getFileName(), odd[other].getFileName())
            if m.missing:
                errors.append(f"even tomograms without an odd partner: {_names(m.missing)}")
            if m.extra:
                errors.append(f"odd tomograms without an even partner: {_names(m.extra)}")
    else:
        no_halves = []
        for ts_id, tomo in reference.items():
            if tomo.hasHalfMaps():
                try:
                    half_paths[ts_id] = order_halves(tomo.getHalfMaps(asList=True), half_order)
                except ValueError as exc:
                    errors.append(f"half maps of {ts_id}: {exc}")
            else:
                no_halves.append(ts_id)
        if no_halves and (halves == "required" or half_paths):
            errors.append(f"tomograms without even/odd half maps: {_names(no_halves)}"
                          + (" (Noise2Noise needs both halves)" if halves == "required" else
                             " (either all tomograms have halves or none)"))
    if halves == "required" and not half_paths and not errors:
        errors.append("no even/odd half maps: Noise2Noise needs both halves of every tomogram")
    return half_paths, errors


def _plain_keys(**collections):
    """Each ``{tsId: item}`` of ``collections`` (None stays None) keyed by plain tsId, in the
    order given, then the errors of tsIds that become one."""
    out, errors = [], []
    for label, items in collections.items():
        if items is None:
            out.append(None)
            continue
        plain, e = by_plain_ts_id(items, label)
        out.append(plain)
        errors += e
    return (*out, errors)


def _tilt_of(ts_id: str, acq, tilt_range, tilt_ranges, tilt_sources,
             problems: Dict[str, List[str]]) -> Optional[Tuple[float, float, str]]:
    """``(tilt_min_deg, tilt_max_deg, source)`` of one tomogram: the form's range, else its
    tilt series' enabled tilts, else its acquisition; None (and the problem noted) when
    missing or out of [-90, 90]."""
    if tilt_range is not None:
        return tilt_range[0], tilt_range[1], TILT_FROM_FORM
    if tilt_ranges and ts_id in tilt_ranges:
        t_min, t_max = tilt_ranges[ts_id]
        source = (tilt_sources or {}).get(ts_id, TILT_FROM_TILT_SERIES)
    else:
        t_min, t_max = acq.getAngleMin(), acq.getAngleMax()
        source = TILT_FROM_ACQUISITION
        if t_min is None or t_max is None:
            problems["tilt"].append(ts_id)
            return None
    try:
        check_tilt_range(t_min, t_max)
    except ValueError:
        problems["bad tilt"].append(f"{ts_id} ({t_min}, {t_max}, from the {source})")
        return None
    return t_min, t_max, source


def _problem_messages(problems: Dict[str, List[str]]) -> List[str]:
    messages = []
    if problems["acquisition"]:
        messages.append(f"tomograms without acquisition (voltage, Cs, amplitude contrast): "
                        f"{_names(problems['acquisition'])}")
    if problems["tilt"]:
        messages.append(f"tomograms without a tilt range in their acquisition (set it in the "
                        f"form): {_names(problems['tilt'])}")
    if problems["bad tilt"]:
        messages.append("tilt ranges must satisfy -90 <= min < max <= 90; wrong for: "
                        + _names(problems["bad tilt"]))
    if problems["defocus"]:
        messages.append(f"no defocus for {_names(problems['defocus'])}: give a CTF set that "
                        f"covers them or a defocus value")
    return messages
