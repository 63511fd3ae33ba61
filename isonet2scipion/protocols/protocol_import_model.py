"""Import a trained IsoNet2 network (.pt) as an IsoNet2Model."""
import json
import os
import shutil
from enum import Enum

from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.protocol import params
from pyworkflow.utils import Message

from isonet2core.config import METHODS, TrainConfig
from isonet2core.io import output_names
from isonet2scipion.constants import ARCH_CHOICES, CTF_MODE_CHOICES
from isonet2scipion.methods import REFERENCES, withProgram
from isonet2scipion.objects import IsoNet2Model

MODEL_METHODS = list(METHODS)


class ImportModelOutputs(Enum):
    model = IsoNet2Model


def describeModelFile(path):
    """What the file name and a ``config.json`` beside the model tell about it:
    ``{"method", "arch", "cube_size", "ctf_mode", "epochs"}`` (missing keys: unknown)."""
    info = {}
    match = output_names.MODEL_NAME.search(os.path.basename(path))
    if match:
        info.update(method=match["method"], arch=match["arch"], cube_size=int(match["cube"]))
    config = os.path.join(os.path.dirname(path), output_names.CONFIG_FILE)
    if os.path.exists(config):
        try:
            with open(config) as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {}
        # isonet2 refine/denoise write {"config": TrainConfig fields, "tomograms": ...}
        train = data.get("config", {}) if isinstance(data, dict) else {}
        for key in ("method", "arch", "cube_size", "ctf_mode", "epochs"):
            if isinstance(train, dict) and train.get(key) is not None:
                info[key] = train[key]
    return info


class ProtIsoNet2ImportModel(EMProtocol):
    """Import a network trained by IsoNet2 (``network_*.pt``). Method, architecture and cube
    size are read from the IsoNet2 file name and a config.json beside it when present;
    otherwise the values of this form are used."""
    _label = "import model"
    _devStatus = BETA
    _possibleOutputs = ImportModelOutputs

    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        form.addParam("modelFile", params.FileParam, important=True, label="Model file (.pt)",
                      help="A checkpoint written by isonet2 refine or denoise.")
        form.addParam("copyFile", params.BooleanParam, default=True,
                      label="Copy the file into the project?",
                      help="No: link to it (the original must stay in place).")
        form.addParam("method", params.EnumParam, choices=MODEL_METHODS, default=0,
                      label="Method (if not in the file name)",
                      help="isonet2-n2n, isonet2 (refine models) or n2n (denoise models).")
        form.addParam("arch", params.EnumParam, choices=ARCH_CHOICES,
                      default=ARCH_CHOICES.index(TrainConfig.arch),
                      label="Architecture (if not in the file name)",
                      help="U-Net size the network was trained with; read from file names such "
                           "as network_isonet2-n2n_unet-medium_96_full.pt when present.")
        form.addParam("cube_size", params.IntParam, default=96,
                      label="Cube size (if not in the file name)",
                      help="Edge in voxels of the training cubes (the number before _full.pt in "
                           "IsoNet2's model file names).")
        form.addParam("CTF_mode", params.EnumParam, choices=CTF_MODE_CHOICES, default=0,
                      label="CTF mode (if no config.json)",
                      help="CTF handling the network was trained with; read from the "
                           "config.json written beside the model when it exists.")
        form.addParam("epochs", params.IntParam, allowsNull=True,
                      label="Epochs (if no config.json)",
                      help="Epochs the network was trained for (information only); read from "
                           "config.json when it exists.")

    def _insertAllSteps(self):
        self._insertFunctionStep(self.importStep, self.modelFile.get(), self.copyFile.get())

    def importStep(self, path, copy):
        target = self._getExtraPath(os.path.basename(path))
        if copy:
            shutil.copy2(path, target)
        else:
            os.symlink(os.path.abspath(path), target)
        info = self._modelInfo()
        model = IsoNet2Model(path=target, method=info["method"], arch=info["arch"],
                             cubeSize=info["cube_size"], ctfMode=info["ctf_mode"],
                             epochs=info["epochs"])
        self._defineOutputs(**{ImportModelOutputs.model.name: model})

    def _modelInfo(self):
        ctf = CTF_MODE_CHOICES[self.CTF_mode.get()]
        info = {"method": MODEL_METHODS[self.method.get()],
                "arch": ARCH_CHOICES[self.arch.get()], "cube_size": self.cube_size.get(),
                "ctf_mode": None if ctf == "None" else ctf, "epochs": self.epochs.get()}
        info.update(describeModelFile(self.modelFile.get()))
        return info

    def _validate(self):
        path = self.modelFile.get()
        if not path or not os.path.isfile(path):
            return [f"the model file {path} does not exist"]
        if not path.endswith(".pt"):
            return [f"{path} is not a .pt file (IsoNet2 networks are saved as .pt)"]
        return []

    def _summary(self):
        model = getattr(self, ImportModelOutputs.model.name, None)
        return [f"Imported {model}"] if model is not None else []

    def _methods(self):
        model = getattr(self, ImportModelOutputs.model.name, None)
        if model is None:
            return []
        return withProgram([f"A trained IsoNet2 network ({model.getMethod()}, {model.getArch()}, "
                            f"cube {model.getCubeSize()}) was imported."])

    def _citations(self):
        return list(REFERENCES)
