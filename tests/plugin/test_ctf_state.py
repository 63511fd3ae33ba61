"""Issue 26, items 1-5, on real upstream objects: tilt series, CTF series and tomograms built with
scipion-em-tomo's classes, the CTF-corrected tilt series registered by scipion-em-imod's own
``ProtImodCtfCorrection`` methods, and the plugin's protocols asked (``_validate``, ``_warnings``,
``_summary``, the core arguments) without a project: their pointers set to the objects.

1. a tomogram reconstructed from phase-flipped tilt series is not flagged (``Tomogram.copyInfo``
   does not copy the flag): the flipped state comes from the tilt series; unknown -> refused;
2. a network trained with a CTF mode needs a defocus in predict;
3. separate even/odd sets whose tsIds carry a half tag meet their CTF by the plain tsId;
4. the tilt range is that of the views enabled in the tilt series and in the CTF series;
5. phase-plate data (a CTF phase shift) are refused where a CTF is applied, reported elsewhere.
"""
import os

import pytest
from imod.protocols.protocol_ctfCorrection import ProtImodCtfCorrection
from scipion_objects import (
    ctf_series_set,
    protocol,
    tilt_series_set,
    tomogram,
    tomogram_set,
)
from tomo.objects import SetOfTiltSeries, SetOfTomograms, Tomogram
from tomo.utils import getCommonTsAndCtfElements

from isonet2scipion import convert, ctf_inputs
from isonet2scipion.constants import CTF_CORRECTED_NO, CTF_CORRECTED_YES, HALVES_SEPARATE
from isonet2scipion.objects import IsoNet2Model
from isonet2scipion.protocols import ProtIsoNet2Deconv, ProtIsoNet2Predict
from isonet2scipion.protocols.core_options import DECONV_OPTIONS, coreArgs
from isonet2scipion.wizards import IsoNet2DefocusWizard

ANGLES = [-9.0, -6.0, -3.0, 0.0, 3.0, 6.0, 9.0]
ACQ_ORDERS = [6, 4, 2, 0, 1, 3, 5]          # dose symmetric


def _ts_set(tmp_path, ts_ids, disabled=(), name="ts"):
    """Raw tilt series as tomo's import leaves them; ``disabled``: (tsId, angle) excluded."""
    return tilt_series_set(tmp_path, ts_ids, ANGLES, ACQ_ORDERS, disabled=disabled, name=name)


def _ctf_set(tmp_path, ts_set, defocus_by_ts, disabled=(), phase_shift_deg=None):
    """CTF series on ``ts_set`` (U = d + 1000 |tilt|, V = U + 400); ``disabled``: (tsId, angle)
    estimations disabled in the CTF set only; ``phase_shift_deg``: {tsId: shift} of every view."""
    return ctf_series_set(tmp_path, ts_set, defocus_by_ts, ANGLES, ACQ_ORDERS, disabled=disabled,
                          phase_shift_deg=phase_shift_deg)


def _imod_ctf_corrected(tmp_path, ts_set, ctf_set):
    """The output of IMOD's CTF correction, registered by its own code: ``_registerOutput``'s
    calls (``_createOutputTiltSeries``, ``_processTiltImages``, ``_updateAcquisition``) on an
    instance of ``ProtImodCtfCorrection``; the ctfphaseflip run itself is left out (its file
    is never read here). Only the tilt series is flagged CTF-corrected, and only the views
    enabled in the tilt series and the CTF series are re-stacked."""
    prot = ProtImodCtfCorrection()
    out_set = SetOfTiltSeries(filename=str(tmp_path / "ts_ctfcorrected.sqlite"))
    out_set.copyInfo(ts_set)
    ctfs = {c.getTsId(): c.clone(ignoreAttrs=[]) for c in ctf_set.iterItems()}
    for ts in [t.clone() for t in ts_set.iterItems()]:
        ctf = ctfs[ts.getTsId()]
        present = getCommonTsAndCtfElements(ts, ctf)
        out_ts = prot._createOutputTiltSeries(ts, present)
        out_set.append(out_ts)
        ti_list, a_min, a_max = prot._processTiltImages(
            ts, present, str(tmp_path / f"{ts.getTsId()}_ctfcorr.mrc"))
        prot._updateAcquisition(ts, ctf, present, out_ts, ti_list, a_min, a_max)
        out_ts.write()
        out_set.update(out_ts)
    out_set.write()
    return out_set


def _imod_reconstructed(tmp_path, ts_set, name="tomos"):
    """Tomograms as IMOD's ``ProtImodTomoReconstruction._registerOutput`` registers them:
    ``Tomogram(tsId=tsId)``, ``copyInfo(ts)`` (which does not copy ``_ctfCorrected``), the
    file name, the halves [odd, even] (``setTomoOddEven``)."""
    tomo_set = SetOfTomograms(filename=str(tmp_path / f"{name}.sqlite"))
    tomo_set.setSamplingRate(ts_set.getSamplingRate())
    tomo_set.setAcquisition(ts_set.getAcquisition())
    for ts in ts_set.iterItems():
        ts_id = ts.getTsId()
        tomo = Tomogram(tsId=ts_id)
        tomo.copyInfo(ts)
        tomo.setFileName(str(tmp_path / f"{ts_id}.mrc"))
        tomo.setHalfMaps([str(tmp_path / f"{ts_id}_odd.mrc"), str(tmp_path / f"{ts_id}_even.mrc")])
        tomo_set.append(tomo)
    tomo_set.write()
    return tomo_set


def _tomo_set(tmp_path, name, ts_ids, flagged=()):
    return tomogram_set(tmp_path, name, [
        tomogram(ts_id, str(tmp_path / f"{name}_{ts_id}.mrc"), ctf_corrected=ts_id in flagged)
        for ts_id in ts_ids])


def _protocol(cls, tmp_path, **inputs):
    return protocol(cls, tmp_path / "run", **inputs)


def _model(tmp_path, ctf_mode):
    path = tmp_path / f"network_isonet2-n2n_unet-small_16_full_{ctf_mode}.pt"
    path.write_bytes(b"")
    return IsoNet2Model(path=str(path), method="isonet2-n2n", arch="unet-small", cubeSize=16,
                        ctfMode=ctf_mode, epochs=1)


# ------------------------------------------------------------------ 1. phase flipped once
@pytest.fixture()
def imod_chain(tmp_path):
    """Raw tilt series (TS_01 with +9 excluded) -> CTF (TS_01's -9 disabled in the CTF set) ->
    IMOD CTF correction -> IMOD reconstruction."""
    raw = _ts_set(tmp_path, ["TS_01", "TS_02"], disabled={("TS_01", 9.0)})
    ctf = _ctf_set(tmp_path, raw, {"TS_01": 30000.0, "TS_02": 40000.0},
                   disabled={("TS_01", -9.0)})
    corrected = _imod_ctf_corrected(tmp_path, raw, ctf)
    tomos = _imod_reconstructed(tmp_path, corrected)
    return raw, ctf, corrected, tomos


def test_imod_ctf_correction_flags_the_tilt_series_only(imod_chain):
    """The upstream behaviour the plugin has to live with."""
    raw, ctf, corrected, tomos = imod_chain
    assert all(ts.ctfCorrected() for ts in corrected)
    assert not any(t.ctfCorrected() for t in tomos)
    assert not any(ts.ctfCorrected() for ts in raw)     # the CTF series' own tilt series


def test_phase_flipped_state_comes_from_the_tilt_series_not_twice(imod_chain, tmp_path):
    raw, ctf, corrected, tomos = imod_chain
    flipped = DECONV_OPTIONS[[o.attr for o in DECONV_OPTIONS].index("phaseflipped")]

    # without the tilt series, nothing tells: auto is refused, naming both and the way out
    prot = _protocol(ProtIsoNet2Deconv, tmp_path, inputTomograms=tomos, inputCtfs=ctf)
    errors = prot._validate()
    assert any("unknown for TS_01, TS_02" in e and "'Tilt series'" in e
               and "'Tomograms already phase flipped?'" in e for e in errors), errors
    assert "Phase flipped TS_01: unknown" in "\n".join(prot._summary())

    # with the tilt series they were reconstructed from: flipped, said once to the core
    prot = _protocol(ProtIsoNet2Deconv, tmp_path, inputTomograms=tomos, inputCtfs=ctf,
                     inputTiltSeries=corrected)
    assert prot._validate() == []
    assert prot._ctfFlipped(flipped) is True
    args = coreArgs(prot, DECONV_OPTIONS)
    assert args[args.index("--phaseflipped") + 1] == "True"
    summary = "\n".join(prot._summary())
    assert ("Phase flipped TS_01: yes (its tilt series (input) is flagged CTF-corrected)"
            in summary), summary
    assert prot._inputFlipped() == {"TS_01": True, "TS_02": True}

    # the raw tilt series given instead: known not flipped
    prot = _protocol(ProtIsoNet2Deconv, tmp_path, inputTomograms=tomos, inputCtfs=ctf,
                     inputTiltSeries=raw)
    assert prot._validate() == [] and prot._ctfFlipped(flipped) is False

    # an explicit choice is taken as it is; one that contradicts the tilt series is a warning
    prot = _protocol(ProtIsoNet2Deconv, tmp_path, inputTomograms=tomos, inputCtfs=ctf,
                     inputTiltSeries=corrected, phaseflipped=CTF_CORRECTED_NO)
    assert prot._validate() == [] and prot._ctfFlipped(flipped) is False
    assert any("is no, but for TS_01, TS_02 its tilt series (input) is flagged" in w
               for w in prot._warnings()), prot._warnings()
    prot = _protocol(ProtIsoNet2Deconv, tmp_path, inputTomograms=tomos, inputCtfs=ctf,
                     phaseflipped=CTF_CORRECTED_YES)
    assert prot._validate() == [] and prot._ctfFlipped(flipped) is True


def test_flip_state_rules():
    fs = ctf_inputs.flip_state
    assert fs(True, False).flipped is True                  # AreTomo flags the tomogram
    assert fs(False, True).flipped is True                  # IMOD flags the tilt series
    assert fs(False, False, True).flipped is False          # the given series wins
    assert fs(False, None, True).flipped is True            # the CTF's series flagged
    assert fs(False, None, False).flipped is None           # it says nothing when not
    assert fs(False).flipped is None
    states = {"TS_01": fs(True), "TS_02": fs(False, False)}
    value, errors, _ = ctf_inputs.resolve_flipped(states, "auto", "'X'")
    assert value is False and "only some" in errors[0] and "TS_01" in errors[0]
    assert "TS_02" not in errors[0]
    assert ctf_inputs.resolve_flipped(states, "yes", "'X'")[:2] == (True, [])


def test_aretomo_flagged_tomograms_need_no_tilt_series(tmp_path):
    raw = _ts_set(tmp_path, ["TS_01"])
    ctf = _ctf_set(tmp_path, raw, {"TS_01": 30000.0})
    tomos = _tomo_set(tmp_path, "aretomo", ["TS_01"], flagged={"TS_01"})
    prot = _protocol(ProtIsoNet2Deconv, tmp_path, inputTomograms=tomos, inputCtfs=ctf)
    assert prot._validate() == []
    assert prot._ctfFlipped(DECONV_OPTIONS[-1]) is True


# ------------------------------------------------------------------ 2. predict needs a defocus
def test_predict_with_a_ctf_model_refuses_without_defocus(tmp_path):
    tomos = _tomo_set(tmp_path, "tomos", ["TS_01", "TS_02"])
    prot = _protocol(ProtIsoNet2Predict, tmp_path, halvesSource=2, inputTomograms=tomos,
                     inputModel=_model(tmp_path, "network"), predict_isCTFflipped=CTF_CORRECTED_NO)
    assert any("no defocus for TS_01, TS_02" in e for e in prot._validate()), prot._validate()
    prot.defocus.set(30000.0)
    assert prot._validate() == []
    # a network trained without a CTF mode needs none (nor the flipped state)
    prot = _protocol(ProtIsoNet2Predict, tmp_path, halvesSource=2, inputTomograms=tomos,
                     inputModel=_model(tmp_path, None))
    assert prot._validate() == []


# ------------------------------------------------------------------ 3. half tags in tsIds
@pytest.mark.parametrize("ts_id, plain", [
    ("TS_01_even", "TS_01"), ("TS_01_odd", "TS_01"), ("TS_01_EVN", "TS_01"),
    ("TS_01_ODD", "TS_01"), ("ts_01_Even", "ts_01"), ("TS_01-odd", "TS_01"),
    ("TS_01", "TS_01"), ("TS_odd_01", "TS_odd_01"), ("even", "even"), ("TS_01_evenly", "TS_01_evenly"),
    (None, None)])
def test_plain_ts_id(ts_id, plain):
    assert ctf_inputs.plain_ts_id(ts_id) == plain


def test_separate_half_sets_with_tagged_ts_ids_meet_their_ctf(tmp_path):
    raw = _ts_set(tmp_path, ["TS_01", "TS_02"], disabled={("TS_01", 9.0)})
    ctf = _ctf_set(tmp_path, raw, {"TS_01": 30000.0, "TS_02": 40000.0})
    even = _tomo_set(tmp_path, "even", ["TS_01_even", "TS_02_EVN"])
    odd = _tomo_set(tmp_path, "odd", ["TS_02_ODD", "TS_01_odd"])
    prot = _protocol(ProtIsoNet2Predict, tmp_path, halvesSource=HALVES_SEPARATE,
                     inputEven=even, inputOdd=odd, inputCtfs=ctf, inputTiltSeries=raw,
                     inputModel=_model(tmp_path, "network"))
    entries, errors = prot._collectEntries()
    assert errors == []
    got = {e.ts_id: (e.defocus_a, e.tilt_min_deg, e.tilt_max_deg, e.tilt_source,
                     os.path.basename(e.even), os.path.basename(e.odd)) for e in entries}
    assert got == {
        "TS_01": (pytest.approx(30200.0), -9.0, 6.0, ctf_inputs.TILT_FROM_TS_AND_CTF,
                  "even_TS_01_even.mrc", "odd_TS_01_odd.mrc"),
        "TS_02": (pytest.approx(40200.0), -9.0, 9.0, ctf_inputs.TILT_FROM_TS_AND_CTF,
                  "even_TS_02_EVN.mrc", "odd_TS_02_ODD.mrc")}
    assert prot._validate() == []
    # the form's defocus wizard agrees
    value, message = IsoNet2DefocusWizard.suggest(prot)
    assert value == pytest.approx(35200.0) and "TS_01: 30200 Å" in message
    # the outputs carry the plain tsId
    out = prot._outputTomograms({e.ts_id: (str(tmp_path / f"{e.ts_id}_pred.mrc"), None, None)
                                 for e in entries})
    assert sorted(out.getTSIds()) == ["TS_01", "TS_02"]
    assert all(t.ctfCorrected() is False for t in out)
    # one set holding both halves of a tsId is refused, naming them
    both = _tomo_set(tmp_path, "both", ["TS_01_even", "TS_01_odd"])
    _, errors = convert.collect_entries(full=convert.tomograms_by_ts_id(both, "t")[0])
    assert any("TS_01_even and TS_01_odd (both TS_01)" in e for e in errors), errors


# ------------------------------------------------------------------ 4. tilt range
def test_tilt_range_of_views_enabled_in_tilt_series_and_ctf(imod_chain, tmp_path):
    raw, ctf, corrected, tomos = imod_chain
    # TS_01: +9 excluded in the tilt series, -9 disabled in the CTF set only
    info = ctf_inputs.ctf_by_ts_id(ctf)
    assert info.errors == []
    assert info.tilt_ranges == {"TS_01": (-6.0, 6.0), "TS_02": (-9.0, 9.0)}
    assert info.tilt_sources["TS_01"] == ctf_inputs.TILT_FROM_CTF_TS
    # the re-stacked series IMOD's CTF correction wrote (5 views of TS_01), given as input
    assert corrected.getTiltSeriesFromTsId("TS_01").getSize() == 5
    info = ctf_inputs.ctf_by_ts_id(ctf, corrected)
    assert info.tilt_ranges == {"TS_01": (-6.0, 6.0), "TS_02": (-9.0, 9.0)}
    assert info.tilt_sources["TS_01"] == ctf_inputs.TILT_FROM_TS_AND_CTF
    assert info.ts_ctf_corrected == {"TS_01": True, "TS_02": True}
    # the tilt series alone: its enabled views
    info = ctf_inputs.ctf_by_ts_id(None, raw)
    assert info.tilt_ranges == {"TS_01": (-9.0, 6.0), "TS_02": (-9.0, 9.0)}
    assert info.tilt_sources["TS_01"] == ctf_inputs.TILT_FROM_TS
    # the same in the protocol's rows and summary
    prot = _protocol(ProtIsoNet2Deconv, tmp_path,
                     inputTomograms=tomos, inputCtfs=ctf, inputTiltSeries=corrected)
    entries, errors = prot._collectEntries()
    assert errors == []
    assert [(e.ts_id, e.tilt_min_deg, e.tilt_max_deg) for e in entries] == \
        [("TS_01", -6.0, 6.0), ("TS_02", -9.0, 9.0)]
    assert (f"Tilt range TS_01: -6 to 6 deg ({ctf_inputs.TILT_FROM_TS_AND_CTF})"
            in prot._summary())


# ------------------------------------------------------------------ 5. phase plates
def test_phase_plate_data_are_refused_where_a_ctf_is_applied(tmp_path):
    raw = _ts_set(tmp_path, ["TS_01", "TS_02", "TS_03"])
    ctf = _ctf_set(tmp_path, raw, {"TS_01": 30000.0, "TS_02": 30000.0, "TS_03": 30000.0},
                   phase_shift_deg={"TS_01": 45.0, "TS_02": 2.0})
    info = ctf_inputs.ctf_by_ts_id(ctf)
    assert info.phase_shift_deg == {"TS_01": pytest.approx(45.0), "TS_02": pytest.approx(2.0)}
    assert ctf_inputs.phase_plate_ts_ids(info.phase_shift_deg) == {"TS_01": pytest.approx(45.0)}
    tomos = _tomo_set(tmp_path, "tomos", ["TS_01", "TS_02", "TS_03"])
    prot = _protocol(ProtIsoNet2Deconv, tmp_path, inputTomograms=tomos, inputCtfs=ctf,
                     inputTiltSeries=raw)
    errors = prot._validate()
    assert any("phase-plate" in e and "TS_01 (45 deg)" in e and "TS_02" not in e
               for e in errors), errors
    # predict with a network trained without a CTF mode: a warning, not a refusal
    prot = _protocol(ProtIsoNet2Predict, tmp_path, halvesSource=2, inputTomograms=tomos,
                     inputCtfs=ctf, inputModel=_model(tmp_path, None))
    assert prot._validate() == []
    assert any("TS_01 (45 deg)" in w and "applies no CTF" in w for w in prot._warnings())
    prot.inputModel.set(_model(tmp_path, "phase_only"))
    assert any("phase-plate" in e for e in prot._validate())
    assert "phase shift" in ProtIsoNet2Deconv().getParam("inputCtfs").help.get()
