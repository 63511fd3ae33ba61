"""IsoNet2 refine: the full method (missing wedge, denoising, CTF) -> IsoNet2Model."""
from enum import Enum

from pyworkflow.protocol import params
from tomo.objects import SetOfTomograms

from isonet2core.config import refine_method
from isonet2scipion.constants import METHOD_AUTO, METHOD_N2N_REFINE, REFINE_METHOD_CHOICES
from isonet2scipion.methods import withProgram
from isonet2scipion.objects import IsoNet2Model
from isonet2scipion.protocols.core_options import REFINE_OPTIONS
from isonet2scipion.protocols.train_base import ProtIsoNet2TrainBase


class RefineOutputs(Enum):
    model = IsoNet2Model
    tomograms = SetOfTomograms


class ProtIsoNet2Refine(ProtIsoNet2TrainBase):
    """Train the IsoNet2 network: missing-wedge restoration, denoising and (optionally) CTF
    correction by one self-supervised 3D U-Net. On even/odd halves (isonet2-n2n) it learns
    Noise2Noise denoising together with the wedge; on full tomograms (isonet2) it restores
    the wedge only (add noise_level to learn denoising). Optional masks restrict where the
    training cubes are drawn. The trained network can be applied to the input right away."""
    _label = "refine"
    _possibleOutputs = RefineOutputs
    _halves = "optional"
    _masks = True
    _coreStep = "refine"
    _extraOptions = REFINE_OPTIONS

    def _defineMethodParam(self, form):
        form.addParam("method", params.EnumParam, choices=REFINE_METHOD_CHOICES, default=0,
                      label="Method",
                      help="auto: isonet2-n2n when the tomograms have even/odd halves, else "
                           "isonet2. isonet2-n2n: full method on the halves; isonet2: single "
                           "maps.\n\nIsoNet2 option: --method")

    def _method(self, entries) -> str:
        choice = REFINE_METHOD_CHOICES[self.method.get()]
        if choice != METHOD_AUTO:
            return choice
        return refine_method(halves=bool(entries) and all(e.has_halves for e in entries))

    def _validate(self):
        errors = super()._validate()
        if REFINE_METHOD_CHOICES[self.method.get()] == METHOD_N2N_REFINE:
            entries, _ = self._collectEntries()
            noHalves = [e.ts_id for e in entries if not e.has_halves]
            if noHalves:
                errors.append(f"method {METHOD_N2N_REFINE} needs even/odd halves; missing for: "
                              + ", ".join(noHalves))
        return errors

    def _summary(self):
        return self._trainSummary()

    def _methods(self):
        model = getattr(self, RefineOutputs.model.name, None)
        if model is None:
            return []
        return withProgram([f"An IsoNet2 network [Liu2025IsoNet2] ({model.getMethod()}, "
                f"{model.getArch()}, cube {model.getCubeSize()} voxels, {model.getEpochs()} "
                f"epochs, CTF mode {model.getCtfMode()}, missing-wedge weight "
                f"{self.mw_weight.get()}) was trained on "
                f"{self._referenceSet().getSize()} tomograms."])
