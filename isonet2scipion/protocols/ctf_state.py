"""The CTF state of a protocol's input tomograms: whether they are phase flipped (the "already
phase flipped?" options, :class:`isonet2scipion.protocols.core_options.CtfCorrectedOption`) and
whether their CTF estimations come from a phase plate. The rules are the plain functions of
:mod:`isonet2scipion.ctf_inputs`; this mixin feeds them the protocol's inputs and options."""
from typing import Dict, List, Tuple

from isonet2scipion import ctf_inputs
from isonet2scipion.constants import CTF_CORRECTED_NO, CTF_CORRECTED_YES
from isonet2scipion.protocols.core_options import CTF_CORRECTED_OPTIONS


class CtfStateMixin:
    """Needs ``_referenceSet``, ``_seriesInfo`` and ``_ctfModeApplied`` of the base protocol."""

    def _flipOptions(self) -> list:
        """The "already phase flipped?" options of this form that take part in this run."""
        return [opt for opt in CTF_CORRECTED_OPTIONS if hasattr(self, opt.attr)]

    def _flipChoice(self, opt) -> str:
        choice = getattr(self, opt.attr).get()
        if choice == CTF_CORRECTED_YES:
            return ctf_inputs.FLIP_YES
        if choice == CTF_CORRECTED_NO:
            return ctf_inputs.FLIP_NO
        return ctf_inputs.FLIP_AUTO

    def _flipLabel(self, opt) -> str:
        tab = " (Prediction tab)" if opt.attr.startswith("predict_") and \
            hasattr(self, "doPredict") else ""
        return f"'{opt.label}'{tab}"

    def _flipStates(self, info=None) -> Dict[str, ctf_inputs.FlipState]:
        """``{plain tsId: FlipState}`` of the reference set's tomograms."""
        refSet = self._referenceSet()
        if refSet is None:
            return {}
        info = info if info is not None else self._seriesInfo()
        states = {}
        for tomo in refSet.iterItems():
            tsId = ctf_inputs.plain_ts_id(tomo.getTsId())
            states[tsId] = ctf_inputs.flip_state(bool(tomo.ctfCorrected()),
                                                 info.ts_ctf_corrected.get(tsId),
                                                 info.ctf_ts_ctf_corrected.get(tsId))
        return states

    def _resolveFlips(self, states=None) -> Tuple[Dict[str, bool], List[str], List[str]]:
        """``({option attr: value for the core}, errors, warnings)``; the options left on auto
        are resolved together (one error names them all)."""
        states = self._flipStates() if states is None else states
        options = self._flipOptions()
        values, errors, warnings = {}, [], []
        autos = [opt for opt in options if self._flipChoice(opt) == ctf_inputs.FLIP_AUTO]
        if autos:
            label = " and ".join(self._flipLabel(opt) for opt in autos)
            value, errors, _ = ctf_inputs.resolve_flipped(states, ctf_inputs.FLIP_AUTO, label)
            values.update({opt.attr: value for opt in autos})
        for opt in options:
            if opt not in autos:
                value, _, w = ctf_inputs.resolve_flipped(states, self._flipChoice(opt),
                                                         self._flipLabel(opt))
                values[opt.attr] = value
                warnings += w
        return values, errors, warnings

    def _ctfFlipped(self, opt) -> bool:
        """The value given to the core for ``opt`` (auto: the tomograms' shared state; where
        it is unknown or mixed and no CTF is applied, False: the core does not use it)."""
        return self._resolveFlips()[0][opt.attr]

    def _inputFlipped(self) -> Dict[str, bool]:
        """``{plain tsId: phase flipped?}`` of the input tomograms, for the outputs' flag: an
        option set to yes/no says it for all, else each tomogram's known state."""
        states = self._flipStates()
        for opt in self._flipOptions():
            choice = self._flipChoice(opt)
            if choice != ctf_inputs.FLIP_AUTO:
                return {ts: choice == ctf_inputs.FLIP_YES for ts in states}
        return {ts: bool(state.flipped) for ts, state in states.items()}

    def _ctfStateErrors(self) -> List[str]:
        """Refusals where a CTF is applied: an unknown or mixed phase-flipped state on auto,
        phase-plate data."""
        if not self._ctfModeApplied():
            return []
        errors = self._resolveFlips()[1]
        plates = ctf_inputs.phase_plate_message(self._seriesInfo().phase_shift_deg)
        if plates:
            errors.append(f"{plates}: {self._phasePlateAdvice()}")
        return errors

    def _phasePlateAdvice(self) -> str:
        return "run without a CTF mode (CTF mode None), with a model trained without one"

    def _ctfStateWarnings(self) -> List[str]:
        """An explicit yes/no that contradicts a known state; phase-plate data where no CTF is
        applied."""
        warnings = self._resolveFlips()[2]
        if not self._ctfModeApplied():
            plates = ctf_inputs.phase_plate_message(self._seriesInfo().phase_shift_deg)
            if plates:
                warnings.append(f"{plates} (this run applies no CTF)")
        return warnings

    def _warnings(self):
        try:
            return self._ctfStateWarnings()
        except Exception as exc:  # warnings must not stop the form; _validate reports inputs
            return [f"the CTF state of the inputs cannot be read: {exc}"]

    def _ctfStateSummary(self, limit: int = 6) -> List[str]:
        """Per tomogram (at most ``limit``): phase flipped or not, and where that came from."""
        if not self._flipOptions():
            return []
        states = self._flipStates()
        chosen = {self._flipChoice(opt) for opt in self._flipOptions()} - {ctf_inputs.FLIP_AUTO}
        lines = []
        for tsId, state in list(states.items())[:limit]:
            known = {True: "yes", False: "no", None: "unknown"}[state.flipped]
            lines.append(f"Phase flipped {tsId}: {known} ({state.source})")
        if len(states) > limit:
            lines.append(f"... and {len(states) - limit} more tomograms")
        if chosen:
            lines.append(f"Phase flipped, as chosen in the form: {', '.join(sorted(chosen))}")
        plates = ctf_inputs.phase_plate_message(self._seriesInfo().phase_shift_deg)
        if plates:
            lines.append(plates[:1].upper() + plates[1:])
        return lines
