"""IsoNet2 predict: IsoNet2Model + SetOfTomograms -> corrected (or denoised) SetOfTomograms."""
import json
import os
from enum import Enum

from pyworkflow.protocol import params
from tomo.objects import SetOfTomograms

from isonet2scipion import convert
from isonet2scipion.methods import withProgram
from isonet2scipion.protocols.core_options import PREDICT_OPTIONS
from isonet2scipion.protocols.predict_steps import PredictMixin
from isonet2scipion.protocols.predict_streaming import StreamingPredictMixin
from isonet2scipion.protocols.protocol_base import ProtIsoNet2Base


class PredictOutputs(Enum):
    tomograms = SetOfTomograms


class ProtIsoNet2Predict(StreamingPredictMixin, PredictMixin, ProtIsoNet2Base):
    """Apply a trained IsoNet2 network to tomograms. Refine models give missing-wedge
    corrected tomograms, denoise models denoised ones. With Noise2Noise models and even/odd
    halves, each half is predicted too (attached to the output as its half maps) and the
    output is predicted from the halves' average (refine models; denoise models: the output is
    the average of the two half predictions, as the IsoNet2 program does for both). One step
    per tomogram. Works in streaming: on a tomogram set
    still being produced, each tomogram is predicted and registered as it arrives."""
    _label = "predict"
    _possibleOutputs = PredictOutputs
    _halves = "optional"
    _ctf = "optional"
    _gpu = True
    _streamingInputs = ("tomograms",)   # separate even/odd sets must be complete

    @classmethod
    def worksInStreaming(cls):
        return True

    def _defineProtocolParams(self, form):
        form.addSection(label="Prediction")
        form.addParam("inputModel", params.PointerParam, pointerClass="IsoNet2Model",
                      important=True, label="IsoNet2 model",
                      help="A network trained by IsoNet2 refine or denoise, or imported.")
        for opt in PREDICT_OPTIONS:
            opt.addTo(form)

    def _ctfModeApplied(self) -> bool:
        """A network trained with a CTF mode applies a CTF: it needs a defocus per tomogram
        (refused in _validate without one, never the core's default) and the phase-flipped
        state."""
        model = self.inputModel.get()
        return model is not None and model.getCtfMode() is not None

    def _phasePlateAdvice(self) -> str:
        return "use a network trained without a CTF mode"

    def _modelUpstream(self) -> str:
        path = self.inputModel.get().getPath()
        stamp = os.path.getmtime(path) if os.path.exists(path) else None
        return json.dumps({"model": os.path.abspath(path), "mtime": stamp})

    def _insertAllSteps(self):
        if self._inputIsOpen():
            self._insertStreamingSteps(self.inputModel.get().getPath(), self._modelUpstream())
        else:
            super()._insertAllSteps()

    def _insertProcessingSteps(self, entries, convertId):
        path = self.inputModel.get().getPath()
        upstream = self._modelUpstream()
        stepIds = self._insertPredictSteps(entries, [convertId], path, upstream)
        self._insertFunctionStep(self.createOutputStep,
                                 convert.entries_signature(entries, upstream=upstream),
                                 prerequisites=stepIds, needsGPU=False)

    def createOutputStep(self, signature):
        entries = convert.entries_from_signature(signature)
        model = self.inputModel.get()
        out = self._predictedTomograms(entries, denoised=model.isDenoiser(),
                                       ctfCorrected=model.getCtfMode() is not None)
        self._defineOutputs(**{PredictOutputs.tomograms.name: out})
        self._defineInputRelations(out)
        self._defineSourceRelation(self.inputModel, out)

    def _validate(self):
        errors = super()._validate() + self._streamingErrors()
        model = self.inputModel.get()
        if model is not None and not os.path.exists(model.getPath() or ""):
            errors.append(f"the model file {model.getPath()} does not exist")
        return errors

    def progressLines(self):
        """How many tomograms are predicted (while the steps run)."""
        return self._predictProgress()

    def _summary(self):
        lines = self._inputSummary() + self.progressLines()
        if getattr(self, "_streaming", False) or self._inputIsOpen():
            lines.append("Streaming: tomograms are predicted as they arrive in the open input set")
        if self.inputModel.get() is not None:
            lines.append(f"Model: {self.inputModel.get()}")
        out = getattr(self, PredictOutputs.tomograms.name, None)
        if out is not None:
            lines.append(f"Predicted tomograms: {out.getSize()}"
                         + (" with even/odd halves" if out.hasOddEven() else ""))
        return lines

    def _methods(self):
        out = getattr(self, PredictOutputs.tomograms.name, None)
        if out is None:
            return []
        model = self.inputModel.get()
        kind = "denoised" if model.isDenoiser() else "missing-wedge corrected"
        return withProgram([f"{out.getSize()} tomograms were {kind} with an IsoNet2 network "
                f"[Liu2025IsoNet2] ({model.getMethod()}, {model.getArch()}, cube "
                f"{model.getCubeSize()})."])
