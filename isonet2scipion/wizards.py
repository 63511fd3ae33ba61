"""Wizards of the IsoNet2 forms: numbers a user would otherwise work out by hand.

- subtomograms per tomogram, or epochs, from the IsoNet2 tutorial's rule of thumb
  (subtomograms x tomograms x epochs ~ 100 000; the arithmetic is
  :mod:`isonet2core.training.budget`'s), for the tomograms chosen in the form;
- the defocus at 0 degrees of each tomogram from the chosen CTF estimations
  (:func:`isonet2scipion.ctf_inputs.ctf_by_ts_id`, the value the protocols use), shown per
  tsId; the form's fallback defocus is set to their mean.

Each wizard's ``suggest(protocol)`` is the whole logic (no Tk): it returns
``(value or None, message)``; ``show`` puts the value in the form and the message in a dialog.
"""
from typing import Optional, Tuple

from pyworkflow.gui.dialog import showInfo, showWarning
from pyworkflow.wizard import Wizard

from isonet2core.training import budget
from isonet2scipion import ctf_inputs
from isonet2scipion.protocols import ProtIsoNet2Deconv, ProtIsoNet2Denoise, ProtIsoNet2Predict, ProtIsoNet2Refine

TRAINING = (ProtIsoNet2Refine, ProtIsoNet2Denoise)


def _tomogramCount(protocol) -> Optional[int]:
    refSet = protocol._referenceSet()
    return refSet.getSize() if refSet is not None and refSet.getSize() else None


class _IsoNet2Wizard(Wizard):
    _param = None
    _title = "IsoNet2"

    @classmethod
    def suggest(cls, protocol) -> Tuple[Optional[object], str]:
        raise NotImplementedError

    def show(self, form, *params):
        value, message = self.suggest(form.protocol)
        if value is None:
            showWarning(self._title, message, form.root)
            return
        form.setVar(self._param, value)
        showInfo(self._title, message, form.root)


class IsoNet2SubtomosWizard(_IsoNet2Wizard):
    """Subtomograms per tomogram from the epochs and the number of tomograms."""
    _targets = [(cls, ["number_subtomos"]) for cls in TRAINING]
    _param = "number_subtomos"
    _title = "Subtomograms per tomogram"

    @classmethod
    def suggest(cls, protocol):
        n = _tomogramCount(protocol)
        epochs = protocol.epochs.get()
        if n is None:
            return None, "Choose the input tomograms first."
        if not epochs or epochs < 1:
            return None, "Set the number of epochs first."
        value = budget.subtomos_per_tomogram(n, epochs)
        return value, (f"{value} subtomograms per tomogram: {value} x {n} tomogram(s) x {epochs} "
                       f"epoch(s) = {value * n * epochs} cube draws, about the "
                       f"{budget.RULE_OF_THUMB_TOTAL} of IsoNet2's rule of thumb.")


class IsoNet2EpochsWizard(_IsoNet2Wizard):
    """Epochs from the subtomograms per tomogram (or the automatic number) and the tomograms."""
    _targets = [(cls, ["epochs"]) for cls in TRAINING]
    _param = "epochs"
    _title = "Epochs"

    @classmethod
    def suggest(cls, protocol):
        n = _tomogramCount(protocol)
        if n is None:
            return None, "Choose the input tomograms first."
        subtomos = protocol.number_subtomos.get()
        auto = subtomos is None
        if auto:
            subtomos = budget.default_subtomos_per_tomogram(n)
        value = budget.epochs_for(n, subtomos)
        return value, (f"{value} epochs: {subtomos} subtomograms per tomogram"
                       f"{' (automatic)' if auto else ''} x {n} tomogram(s) x {value} epochs = "
                       f"{subtomos * n * value} cube draws, about the "
                       f"{budget.RULE_OF_THUMB_TOTAL} of IsoNet2's rule of thumb.")


class IsoNet2DefocusWizard(_IsoNet2Wizard):
    """The defocus at 0 degrees of each tomogram, from the CTF estimations."""
    _targets = [(cls, ["defocus"]) for cls in (ProtIsoNet2Deconv, ProtIsoNet2Refine,
                                                ProtIsoNet2Denoise, ProtIsoNet2Predict)]
    _param = "defocus"
    _title = "Defocus from the CTF estimations"

    @classmethod
    def suggest(cls, protocol):
        ctfs = protocol.inputCtfs.get()
        if ctfs is None:
            return None, ("Choose the CTF estimations first: the defocus of each tomogram is "
                          "read from them (the tilt image nearest 0 degrees).")
        info = ctf_inputs.ctf_by_ts_id(ctfs, protocol.inputTiltSeries.get())
        defocus, errors = info.defocus_a, info.errors
        if not defocus:
            return None, "No defocus found: " + "; ".join(errors or ["the set is empty"])
        lines = [f"{tsId}: {value:.0f} Å" for tsId, value in sorted(defocus.items())]
        mean = sum(defocus.values()) / len(defocus)
        message = ("Defocus at 0 degrees (mean of U and V of the tilt image nearest 0°), used "
                   "per tomogram:\n" + "\n".join(lines[:30])
                   + (f"\n... and {len(lines) - 30} more" if len(lines) > 30 else "")
                   + (("\nNot found: " + "; ".join(errors)) if errors else "")
                   + f"\n\nThe fallback defocus (tomograms without an estimation) is set to "
                     f"their mean, {mean:.0f} Å.")
        return round(mean, 1), message
