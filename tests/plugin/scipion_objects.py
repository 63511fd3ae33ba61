"""Scipion objects built with scipion-em-tomo's own classes, shared by the plugin tests: an
acquisition, tilt series, CTF series on them, tomograms and their sets (each set in a
temporary sqlite file), a plugin protocol with its inputs set (no project), and the protocol's
conversion step run as ``_insertAllSteps`` would run it.

Test modules import it as ``from scipion_objects import ...`` (pytest puts the test folder on
``sys.path``, as for ``tests/reliability/reliability_helpers.py``).
"""
import os

from tomo.objects import (
    CTFTomo,
    CTFTomoSeries,
    SetOfCTFTomoSeries,
    SetOfTiltSeries,
    SetOfTomograms,
    TiltImage,
    TiltSeries,
    TomoAcquisition,
    Tomogram,
)

from isonet2scipion import convert


def acquisition(angle_min=-60.0, angle_max=60.0, **fields):
    """A ``TomoAcquisition`` from ``angle_min`` to ``angle_max`` in steps of 3 degrees, 300 kV,
    Cs 2.7 mm, amplitude contrast 0.07; ``fields``: other or different ``TomoAcquisition``
    arguments (``voltage``, ``tiltAxisAngle``, ``dosePerFrame`` ...)."""
    values = dict(angleMin=angle_min, angleMax=angle_max, step=3.0, voltage=300.0,
                  sphericalAberration=2.7, amplitudeContrast=0.07)
    values.update(fields)
    return TomoAcquisition(**values)


def tilt_series_set(folder, ts_ids, angles, acq_orders, disabled=(), name="ts", stack_ext=".st",
                    sampling=10.0, acq=acquisition, series_acq=None):
    """A ``SetOfTiltSeries`` in ``folder/<name>.sqlite``: per tsId of ``ts_ids`` a tilt series
    whose image ``i`` has the tilt ``angles[i]``, the acquisition order ``acq_orders[i]`` and
    the location ``(i + 1, folder/<tsId><stack_ext>)``; ``disabled``: (tsId, angle) of the
    images excluded (disabled), as IMOD and AreTomo do.

    ``acq``: a function giving a new acquisition for the set, each tilt series and each image,
    which also carry the sampling rate (as tomo's import leaves them); ``series_acq``: a function
    of the tsId giving the tilt series' own acquisition instead. ``acq=None``: the set carries
    the sampling rate only, no acquisition, and the series and images neither.
    """
    ts_set = SetOfTiltSeries(filename=str(folder / f"{name}.sqlite"))
    ts_set.setSamplingRate(sampling)
    if acq is not None:
        ts_set.setAcquisition(acq())
    for ts_id in ts_ids:
        ts = TiltSeries(tsId=ts_id)
        if acq is not None:
            ts.setSamplingRate(sampling)
            ts.setAcquisition(series_acq(ts_id) if series_acq is not None else acq())
        ts_set.append(ts)
        for i, angle in enumerate(angles):
            ti = TiltImage(tsId=ts_id, tiltAngle=angle, acquisitionOrder=acq_orders[i])
            ti.setLocation(i + 1, str(folder / f"{ts_id}{stack_ext}"))
            if acq is not None:
                ti.setSamplingRate(sampling)
                ti.setAcquisition(acq())
            ti.setEnabled((ts_id, angle) not in disabled)
            ts.append(ti)
        ts_set.update(ts)
    ts_set.write()
    return ts_set


def ctf_series_set(folder, ts_set, defocus_by_ts, angles, acq_orders, disabled=(),
                   phase_shift_deg=None, per_degree=1000.0, per_view=0.0, resolution=None,
                   fit_quality=None):
    """A ``SetOfCTFTomoSeries`` in ``folder/ctf.sqlite`` on ``ts_set``: per tilt series a CTF
    series whose estimation ``i`` (index ``i + 1``, acquisition order ``acq_orders[i]``) at the
    tilt ``angles[i]`` has the defocus U = d + ``per_degree`` |tilt| + ``per_view`` i
    (d = ``defocus_by_ts[tsId]``), V = U + 400, astigmatism angle 45.

    ``disabled``: (tsId, angle) of the estimations disabled in the CTF set only;
    ``phase_shift_deg``: {tsId: shift} of every estimation of that series; ``resolution`` and
    ``fit_quality``: of every estimation, when given.
    """
    ctf_set = SetOfCTFTomoSeries(filename=str(folder / "ctf.sqlite"))
    ctf_set.setSetOfTiltSeries(ts_set)
    for ts in ts_set.iterItems():
        ts_id = ts.getTsId()
        series = CTFTomoSeries(tsId=ts_id)
        series.setTiltSeries(ts)
        ctf_set.append(series)
        for i, angle in enumerate(angles):
            u = defocus_by_ts[ts_id] + per_degree * abs(angle) + per_view * i
            ctf = CTFTomo(index=i + 1, acqOrder=acq_orders[i])
            ctf.setStandardDefocus(u, u + 400.0, 45.0)
            if phase_shift_deg and ts_id in phase_shift_deg:
                ctf.setPhaseShift(phase_shift_deg[ts_id])
            if resolution is not None:
                ctf.setResolution(resolution)
            if fit_quality is not None:
                ctf.setFitQuality(fit_quality)
            ctf.setEnabled((ts_id, angle) not in disabled)
            series.append(ctf)
        ctf_set.update(series)
    ctf_set.write()
    return ctf_set


def tomogram(ts_id, path, sampling=10.0, acq=None, halves=None, ctf_corrected=None):
    """A ``Tomogram`` of ``ts_id`` at ``path``: ``acq`` its acquisition (default
    :func:`acquisition`), ``halves`` its half maps (as stored: IMOD's [odd, even]) and
    ``ctf_corrected`` its CTF-corrected flag, each set when given."""
    tomo = Tomogram(tsId=ts_id)
    tomo.setLocation(path)
    tomo.setSamplingRate(sampling)
    tomo.setAcquisition(acq if acq is not None else acquisition())
    if halves is not None:
        tomo.setHalfMaps(list(halves))
    if ctf_corrected is not None:
        tomo.setCtfCorrected(ctf_corrected)
    return tomo


def tomogram_set(folder, name, tomos, sampling=10.0, acq=None):
    """A ``SetOfTomograms`` in ``folder/<name>.sqlite`` holding ``tomos``, with the sampling
    rate and the acquisition ``acq`` (default :func:`acquisition`)."""
    tomo_set = SetOfTomograms(filename=str(folder / f"{name}.sqlite"))
    tomo_set.setSamplingRate(sampling)
    tomo_set.setAcquisition(acq if acq is not None else acquisition())
    for tomo in tomos:
        tomo_set.append(tomo)
    tomo_set.write()
    return tomo_set


def protocol(cls, working_dir, /, **inputs):
    """A protocol of class ``cls`` outside a project, working in ``working_dir`` (made if
    missing), its parameters and input pointers ``inputs`` set (``inputTomograms=tomo_set``)."""
    prot = cls()
    os.makedirs(str(working_dir), exist_ok=True)
    prot.setWorkingDir(str(working_dir))
    for name, value in inputs.items():
        getattr(prot, name).set(value)
    return prot


def convert_step(prot):
    """The protocol's conversion step, as _insertAllSteps gives it its argument (the entries
    and the side inputs: mask boundaries, box files); the entries are returned."""
    entries, errors = prot._collectEntries()
    assert errors == []
    prot._sideSignature = ""
    prot.convertInputStep(convert.entries_signature(entries, **prot._sideInputs(entries)))
    return entries
