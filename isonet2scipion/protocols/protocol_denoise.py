"""IsoNet2 denoise: Noise2Noise training on even/odd halves -> IsoNet2Model."""
from enum import Enum

from tomo.objects import SetOfTomograms

from isonet2core.config import DEFAULT_LOSS_FUNC
from isonet2scipion.constants import LOSS_CHOICES, METHOD_DENOISE
from isonet2scipion.methods import withProgram
from isonet2scipion.objects import IsoNet2Model
from isonet2scipion.protocols.train_base import ProtIsoNet2TrainBase


class DenoiseOutputs(Enum):
    model = IsoNet2Model
    tomograms = SetOfTomograms


class ProtIsoNet2Denoise(ProtIsoNet2TrainBase):
    """Plain Noise2Noise denoising (cryoCARE-like): a 3D U-Net learns to predict the odd half
    from the even half and back; optional network CTF correction. Fast; no missing-wedge
    restoration (use refine for that). The trained network can be applied right away."""
    _label = "denoise"
    _possibleOutputs = DenoiseOutputs
    _halves = "required"
    _coreStep = "denoise"

    def _defineProtocolParams(self, form):
        super()._defineProtocolParams(form)
        form.getParam("loss_func").setDefault(LOSS_CHOICES.index(DEFAULT_LOSS_FUNC[METHOD_DENOISE]))

    def _method(self, entries) -> str:
        return METHOD_DENOISE

    def _summary(self):
        return self._trainSummary()

    def _methods(self):
        model = getattr(self, DenoiseOutputs.model.name, None)
        if model is None:
            return []
        return withProgram([f"A Noise2Noise denoising network (IsoNet2 denoise [Liu2025IsoNet2], "
                f"{model.getArch()}, cube {model.getCubeSize()} voxels, "
                f"{model.getEpochs()} epochs, CTF mode {model.getCtfMode()}) was trained on "
                f"the even/odd halves of {self._referenceSet().getSize()} tomograms."])
