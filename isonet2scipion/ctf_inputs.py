"""What upstream tilt series and CTF estimations (IMOD, AreTomo, Warp ``SetOfTiltSeries`` and
``SetOfCTFTomoSeries``) tell IsoNet2 per tsId: the defocus at 0 degrees (Angstrom, underfocus
positive), the tilt range of the views the tomogram was reconstructed from (degrees), the CTF
phase shift (phase plates, degrees) and whether the tilt series were CTF phase flipped.

Every look-up is keyed by the plain tsId (:func:`plain_ts_id`): separate even/odd tomogram sets
whose tsIds carry a half tag (``TS_01_even``, ``TS_01_ODD``) meet their tilt series and CTF
estimations (``TS_01``), and outputs carry the plain tsId.

The CTF-corrected state (:func:`flip_state`): Scipion's ``Tomogram.copyInfo`` does not copy
``_ctfCorrected`` and only IMOD's CTF correction flags its output *tilt series*
(``TiltSeries.ctfCorrected``), so a tomogram reconstructed from phase-flipped tilt series is
not flagged. Per tomogram the state is: flipped when the tomogram is flagged (AreTomo flags the
tomograms it corrects); else the flag of the tilt series it was reconstructed from (the
protocol's tilt-series input); else flipped when the tilt series of its CTF estimation is
flagged; else unknown (a CTF estimation's own tilt series that is not flagged says nothing: the
CTF is estimated before the correction, on the series that IMOD's correction then re-stacks).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

# ------------------------------------------------------------------ tsIds
_HALF_SUFFIX = re.compile(r"[_.-](even|odd|evn)$", re.IGNORECASE)


def plain_ts_id(ts_id: Optional[str]) -> Optional[str]:
    """The tsId without a trailing even/odd half tag, the one rule of the plugin for pairing
    tsIds: ``TS_01_even``, ``TS_01_odd``, ``TS_01_EVN``, ``TS_01_ODD`` (any case, after ``_``,
    ``-`` or ``.``) -> ``TS_01``; any other tsId (and one that would become empty) unchanged."""
    if not ts_id:
        return ts_id
    return _HALF_SUFFIX.sub("", ts_id) or ts_id


def by_plain_ts_id(items: Dict[str, object], label: str) -> Tuple[Dict[str, object], List[str]]:
    """``items`` (``{tsId: item}``) keyed by their plain tsIds, and an error naming the tsIds
    that become one (e.g. ``TS_01_even`` and ``TS_01_odd`` in one set)."""
    out: Dict[str, object] = {}
    sources: Dict[str, List[str]] = {}
    for ts_id, item in items.items():
        plain = plain_ts_id(ts_id)
        sources.setdefault(plain, []).append(ts_id)
        out.setdefault(plain, item)
    clashes = [f"{' and '.join(ids)} (both {plain})" for plain, ids in sources.items()
               if len(ids) > 1]
    errors = [f"{label}: tsIds that differ only by an even/odd tag: {'; '.join(clashes)}"
              ] if clashes else []
    return out, errors


# ------------------------------------------------------------------ defocus
def defocus_at_zero_tilt(entries: Iterable[Tuple[float, float, float]]) -> float:
    """Defocus in Angstrom (underfocus positive) at the tilt nearest 0 degrees: the mean of
    defocus U and V of that tilt image; tilts equally near 0 (e.g. -1.5 and +1.5) are averaged.

    :param entries: ``(tilt_deg, defocus_u_a, defocus_v_a)`` per enabled tilt image.
    :raises ValueError: when there is no entry.
    """
    entries = [(float(t), float(u), float(v)) for t, u, v in entries]
    if not entries:
        raise ValueError("no CTF estimation to take the defocus from")
    nearest = min(abs(t) for t, _, _ in entries)
    values = [(u + v) / 2.0 for t, u, v in entries if abs(t) - nearest < 1e-6]
    return sum(values) / len(values)


def linked_tilt_series(ctf_series):
    """The tilt series a ``CTFTomoSeries`` points to.

    :raises ValueError: naming the series when the pointer is empty or broken (e.g. the
        protocol that made the tilt series was deleted).
    """
    try:
        ts = ctf_series.getTiltSeries()
    except Exception as exc:  # a broken pointer fails in pyworkflow with several types
        raise ValueError(f"CTF series {ctf_series.getTsId()}: its tilt series cannot be read "
                         f"({type(exc).__name__}: {exc})") from exc
    if ts is None:
        raise ValueError(f"CTF series {ctf_series.getTsId()} is not linked to a tilt series, "
                         "so the tilt angles of its estimations are unknown")
    return ts


def ctf_series_entries(ctf_series, tilt_series=None) -> List[Tuple[float, float, float]]:
    """``(tilt_deg, defocus_u_a, defocus_v_a)`` of the estimations of a
    ``tomo.objects.CTFTomoSeries`` whose view is enabled in it and in ``tilt_series`` (default:
    the series it points to), matched by acquisition order, else index, as
    ``CTFTomoSeries.getCtfTomoFromTi`` does."""
    out = []
    ts = tilt_series if tilt_series is not None else linked_tilt_series(ctf_series)
    for ti in ts.iterItems():
        ctf = ctf_series.getCtfTomoFromTi(ti)
        if ctf is None or not ctf.isEnabled():
            continue
        u, v = ctf.getDefocusU(), ctf.getDefocusV()
        if u is None or u <= 0:
            continue
        out.append((ti.getTiltAngle(), u, v if v is not None and v > 0 else u))
    return out


# ------------------------------------------------------------------ tilt range
def enabled_tilt_range(tilt_series, ctf_series=None) -> Tuple[float, float]:
    """``(tilt_min_deg, tilt_max_deg)`` of the views the tomogram was reconstructed from: the
    tilt images enabled in ``tilt_series`` and, when ``ctf_series`` is given, in it too, by
    tomo's own rule (``tomo.utils.getCommonTsAndCtfElements``, used by IMOD's CTF correction:
    acquisition orders, else indices, of the items enabled in both). IMOD and AreTomo disable
    excluded views but copy the nominal acquisition range.

    :raises ValueError: when no view is left.
    """
    images = [ti.clone() for ti in tilt_series.iterItems()]
    if ctf_series is None:
        angles = [float(ti.getTiltAngle()) for ti in images if ti.isEnabled()]
    else:
        from tomo.objects import CTFTomo
        from tomo.utils import getCommonTsAndCtfElements
        common = getCommonTsAndCtfElements(tilt_series, ctf_series)
        by_order = bool(getattr(ctf_series.getFirstItem(), CTFTomo.ACQ_ORDER_FIELD, None))
        angles = [float(ti.getTiltAngle()) for ti in images if ti.isEnabled() and
                  (ti.getAcquisitionOrder() if by_order else ti.getIndex()) in common]
    if not angles:
        raise ValueError(f"tilt series {tilt_series.getTsId()} has no view enabled"
                         + (" in both it and its CTF estimation" if ctf_series is not None
                            else ""))
    return min(angles), max(angles)


TILT_FROM_TS = "enabled views of the tilt series"
TILT_FROM_TS_AND_CTF = "views enabled in the tilt series and its CTF estimation"
TILT_FROM_CTF_TS = "views enabled in the CTF estimation and its tilt series"


# ------------------------------------------------------------------ phase plates
PHASE_PLATE_MIN_DEG = 5.0
"""A CTF phase shift (Scipion stores it in degrees, as IMOD's ctfplotter writes it) larger than
this marks phase-plate data. Below it the CTF zeros move less than the amplitude contrast's own
phase does (arctan(0.07) = 4 degrees); estimators that fit a phase shift report a few degrees on
data without a phase plate."""


def max_phase_shift_deg(ctf_series) -> Optional[float]:
    """The largest ``|phase shift|`` in degrees of the enabled estimations of a CTF series
    (``CTFTomo.getPhaseShift``), or None when none carries one."""
    shifts = []
    for ctf in ctf_series.iterItems():
        if not ctf.isEnabled() or not hasattr(ctf, "getPhaseShift"):
            continue
        value = ctf.getPhaseShift()
        if value is not None:
            shifts.append(abs(float(value)))
    return max(shifts) if shifts else None


def phase_plate_ts_ids(phase_shifts: Dict[str, float]) -> Dict[str, float]:
    """``{tsId: |phase shift| in degrees}`` of the series above :data:`PHASE_PLATE_MIN_DEG`."""
    return {ts: value for ts, value in sorted(phase_shifts.items())
            if value is not None and value > PHASE_PLATE_MIN_DEG}


def phase_plate_message(phase_shifts: Dict[str, float]) -> Optional[str]:
    """One sentence naming the phase-plate series (None when there are none)."""
    plates = phase_plate_ts_ids(phase_shifts)
    if not plates:
        return None
    names = ", ".join(f"{ts} ({value:.0f} deg)" for ts, value in list(plates.items())[:10])
    more = f" and {len(plates) - 10} more" if len(plates) > 10 else ""
    return (f"phase-plate data: the CTF estimations give a phase shift above "
            f"{PHASE_PLATE_MIN_DEG:g} deg for {names}{more}; IsoNet2's CTF model has no phase "
            f"shift, so its CTF is wrong for these tilt series")


# ------------------------------------------------------------------ CTF-corrected state
@dataclass(frozen=True)
class FlipState:
    """Whether one tomogram was reconstructed from CTF phase-flipped tilt series (None: not
    known) and where that came from (a phrase for the summary)."""
    flipped: Optional[bool]
    source: str


def flip_state(tomogram_flag: bool, ts_flag: Optional[bool] = None,
               ctf_ts_flag: Optional[bool] = None) -> FlipState:
    """The CTF-corrected state of one tomogram (see the module doc).

    :param tomogram_flag: ``Tomogram.ctfCorrected()``.
    :param ts_flag: ``TiltSeries.ctfCorrected()`` of the tilt series it was reconstructed from
        (the protocol's tilt-series input), None when not given.
    :param ctf_ts_flag: the same flag of the tilt series its CTF estimation points to, None
        when there is none.
    """
    if tomogram_flag:
        return FlipState(True, "the tomogram is flagged CTF-corrected")
    if ts_flag is not None:
        return FlipState(bool(ts_flag), "its tilt series (input) is "
                         + ("flagged CTF-corrected" if ts_flag else "not flagged CTF-corrected"))
    if ctf_ts_flag:
        return FlipState(True, "the tilt series of its CTF estimation is flagged CTF-corrected")
    return FlipState(None, "unknown: neither the tomogram nor a tilt series it was "
                           "reconstructed from is flagged CTF-corrected")


FLIP_AUTO, FLIP_YES, FLIP_NO = "auto", "yes", "no"


def resolve_flipped(states: Dict[str, FlipState], choice: str,
                    option_label: str) -> Tuple[bool, List[str], List[str]]:
    """The value of an "already phase flipped?" option: ``(flipped, errors, warnings)``.

    ``choice`` "yes"/"no" is taken as it is (a warning names the tomograms whose known state
    differs); "auto" follows the shared state of the tomograms, and is refused (an error naming
    the tomograms and ``option_label``, e.g. ``'Tomograms already phase flipped?'``) when the
    state of some is unknown or they differ.
    """
    if choice in (FLIP_YES, FLIP_NO):
        value = choice == FLIP_YES
        differ = sorted(ts for ts, s in states.items() if s.flipped is not None and
                        s.flipped != value)
        warnings = [f"{option_label} is {choice}, but for {_names(differ)} "
                    f"{states[differ[0]].source}"] if differ else []
        return value, [], warnings
    unknown = sorted(ts for ts, s in states.items() if s.flipped is None)
    if unknown:
        return False, [f"whether the tomograms were reconstructed from CTF phase-flipped tilt "
                       f"series is unknown for {_names(unknown)} (Scipion does not carry the "
                       f"CTF-corrected flag from tilt series to tomograms): give the tilt "
                       f"series they were reconstructed from (input 'Tilt series'), or choose "
                       f"yes or no in {option_label}"], []
    values = {s.flipped for s in states.values()}
    if len(values) > 1:
        flipped = sorted(ts for ts, s in states.items() if s.flipped)
        return False, [f"only some tomograms were reconstructed from CTF phase-flipped tilt "
                       f"series ({_names(flipped)}): process them separately or choose yes "
                       f"or no in {option_label}"], []
    return (values.pop() if values else False), [], []


def _names(ids: Iterable[str], limit: int = 10) -> str:
    ids = sorted(ids)
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


# ------------------------------------------------------------------ everything per tsId
@dataclass(frozen=True)
class CtfInfo:
    """What a ``SetOfCTFTomoSeries`` and the tilt series the tomograms were reconstructed from
    tell per plain tsId: defocus at 0 degrees (A), tilt range (degrees) and its source, the
    largest CTF phase shift (degrees), the CTF-corrected flag of the given tilt series and of
    the CTF estimation's own tilt series, and errors naming the series that fail."""
    defocus_a: Dict[str, float]
    tilt_ranges: Dict[str, Tuple[float, float]]
    errors: List[str]
    tilt_sources: Dict[str, str] = field(default_factory=dict)
    phase_shift_deg: Dict[str, float] = field(default_factory=dict)
    ts_ctf_corrected: Dict[str, bool] = field(default_factory=dict)
    ctf_ts_ctf_corrected: Dict[str, bool] = field(default_factory=dict)
    ts_pixel_size_a: Dict[str, float] = field(default_factory=dict)
    ts_pixel_sources: Dict[str, str] = field(default_factory=dict)


TS_PIXEL_FROM_TS = "tilt series"
TS_PIXEL_FROM_CTF_TS = "tilt series of the CTF estimation"


def tilt_series_by_ts_id(ts_set) -> Tuple[Dict[str, object], List[str]]:
    """``{plain tsId: TiltSeries clone}`` of a ``SetOfTiltSeries``, and errors."""
    items = {ts.getTsId(): ts.clone() for ts in ts_set.iterItems()}
    return by_plain_ts_id(items, "tilt series")


def ctf_by_ts_id(ctf_set=None, ts_set=None) -> CtfInfo:
    """Everything :class:`CtfInfo` holds, from a ``SetOfCTFTomoSeries`` and/or the
    ``SetOfTiltSeries`` the tomograms were reconstructed from (either may be None). The tilt
    range is taken from the given tilt series (its views enabled there and in the CTF
    estimation), else from the CTF estimation's own tilt series. A CTF set whose tilt series
    cannot be reached (the protocol that made them deleted) gives one error, not a traceback:
    tomo links each series to its tilt series through the set."""
    info = CtfInfo({}, {}, [])
    given: Dict[str, object] = {}
    if ts_set is not None:
        given, errors = tilt_series_by_ts_id(ts_set)
        info.errors.extend(errors)
        for ts_id, ts in given.items():
            info.ts_ctf_corrected[ts_id] = bool(ts.ctfCorrected())
            _set_ts_pixel_size(info, ts_id, ts, TS_PIXEL_FROM_TS)
    if ctf_set is not None:
        error = _tilt_series_link_error(ctf_set)
        if error:
            info.errors.append(error)
            ctf_set = None
    covered = set()
    for series in (ctf_set.iterItems() if ctf_set is not None else ()):
        ts_id = plain_ts_id(series.getTsId())
        covered.add(ts_id)
        _read_ctf_series(series, ts_id, given.get(ts_id), info)
    for ts_id, ts in given.items():
        if ts_id not in covered:
            _set_tilt_range(info, ts_id, enabled_tilt_range, (ts,), TILT_FROM_TS)
    return info


def _tilt_series_link_error(ctf_set) -> Optional[str]:
    if not hasattr(ctf_set, "getSetOfTiltSeries"):
        return None
    try:
        ts_set = ctf_set.getSetOfTiltSeries()
    except Exception as exc:  # a broken pointer fails in pyworkflow with several types
        ts_set, detail = None, f" ({type(exc).__name__}: {exc})"
    else:
        detail = ""
    if ts_set is None:
        return (f"the tilt series of the CTF estimations cannot be found{detail} (was the "
                f"protocol that made them deleted?): the tilt angles of the estimations are "
                f"unknown")
    return None


def _read_ctf_series(series, ts_id: str, given_ts, info: CtfInfo) -> None:
    """Defocus, phase shift, the own tilt series' flag and the tilt range of one CTF series."""
    try:
        own = linked_tilt_series(series)
        info.ctf_ts_ctf_corrected[ts_id] = bool(own.ctfCorrected())
        if given_ts is None:
            _set_ts_pixel_size(info, ts_id, own, TS_PIXEL_FROM_CTF_TS)
        info.defocus_a[ts_id] = defocus_at_zero_tilt(ctf_series_entries(series, given_ts))
    except ValueError as exc:
        info.errors.append(f"CTF of {ts_id}: {exc}")
        return
    shift = max_phase_shift_deg(series)
    if shift is not None:
        info.phase_shift_deg[ts_id] = shift
    if given_ts is not None:
        _set_tilt_range(info, ts_id, enabled_tilt_range, (given_ts, series), TILT_FROM_TS_AND_CTF)
    else:
        _set_tilt_range(info, ts_id, enabled_tilt_range, (own, series), TILT_FROM_CTF_TS)


def _set_tilt_range(info: CtfInfo, ts_id: str, compute, args, source: str) -> None:
    try:
        info.tilt_ranges[ts_id] = compute(*args)
        info.tilt_sources[ts_id] = source
    except ValueError as exc:
        info.errors.append(f"tilt range of {ts_id}: {exc}")


def _set_ts_pixel_size(info: CtfInfo, ts_id: str, ts, source: str) -> None:
    """The sampling rate of the tilt series a tomogram was reconstructed from (the given one,
    else the CTF estimation's own), when it has one."""
    sampling = ts.getSamplingRate()
    if sampling:
        info.ts_pixel_size_a[ts_id] = float(sampling)
        info.ts_pixel_sources[ts_id] = source
