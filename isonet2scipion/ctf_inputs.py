"""What upstream CTF estimations (IMOD, AreTomo, Warp ``SetOfCTFTomoSeries``) tell IsoNet2 per
tsId: the defocus at 0 degrees (Angstrom, underfocus positive) and the enabled tilt range of
the linked tilt series (degrees)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Tuple


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


def ctf_series_entries(ctf_series) -> List[Tuple[float, float, float]]:
    """``(tilt_deg, defocus_u_a, defocus_v_a)`` of the enabled estimations of a
    ``tomo.objects.CTFTomoSeries``, tilt angles taken from its tilt series (matched by
    acquisition order, else index, as ``CTFTomoSeries.getCtfTomoFromTi`` does)."""
    out = []
    for ti in linked_tilt_series(ctf_series).iterItems():
        ctf = ctf_series.getCtfTomoFromTi(ti)
        if ctf is None or not ctf.isEnabled():
            continue
        u, v = ctf.getDefocusU(), ctf.getDefocusV()
        if u is None or u <= 0:
            continue
        out.append((ti.getTiltAngle(), u, v if v is not None and v > 0 else u))
    return out


def enabled_tilt_range(tilt_series) -> Tuple[float, float]:
    """``(tilt_min_deg, tilt_max_deg)`` of the enabled tilt images of a tilt series: the range
    the tomogram was reconstructed from (IMOD and AreTomo disable excluded views but copy the
    nominal acquisition range).

    :raises ValueError: when no tilt image is enabled.
    """
    angles = [float(ti.getTiltAngle()) for ti in tilt_series.iterItems() if ti.isEnabled()]
    if not angles:
        raise ValueError(f"tilt series {tilt_series.getTsId()} has no enabled tilt image")
    return min(angles), max(angles)


@dataclass(frozen=True)
class CtfInfo:
    """What a ``SetOfCTFTomoSeries`` tells per tsId: defocus at 0 degrees (A), the enabled
    tilt range of the linked tilt series (degrees), and errors naming the series that fail."""
    defocus_a: Dict[str, float]
    tilt_ranges: Dict[str, Tuple[float, float]]
    errors: List[str]


def ctf_by_ts_id(ctf_set) -> CtfInfo:
    """Defocus and enabled tilt range of every series of a ``SetOfCTFTomoSeries``. A set whose
    tilt series cannot be reached (the protocol that made them deleted) gives one error, not a
    traceback: tomo links each series to its tilt series through the set."""
    defocus, tilt_ranges, errors = {}, {}, []
    if hasattr(ctf_set, "getSetOfTiltSeries"):
        try:
            ts_set = ctf_set.getSetOfTiltSeries()
        except Exception as exc:  # a broken pointer fails in pyworkflow with several types
            ts_set, detail = None, f" ({type(exc).__name__}: {exc})"
        else:
            detail = ""
        if ts_set is None:
            return CtfInfo({}, {}, [f"the tilt series of the CTF estimations cannot be found"
                                    f"{detail} (was the protocol that made them deleted?): "
                                    f"the tilt angles of the estimations are unknown"])
    for series in ctf_set.iterItems():
        ts_id = series.getTsId()
        try:
            defocus[ts_id] = defocus_at_zero_tilt(ctf_series_entries(series))
            tilt_ranges[ts_id] = enabled_tilt_range(linked_tilt_series(series))
        except ValueError as exc:
            errors.append(f"CTF of {ts_id}: {exc}")
    return CtfInfo(defocus, tilt_ranges, errors)
