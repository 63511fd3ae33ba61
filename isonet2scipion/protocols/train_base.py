"""The shared form and steps of denoise and refine (train, optionally predict, output the
model and the predicted tomograms), and the rule that resumes a training step."""
import json
import os
import shutil
from typing import List, Optional

from pyworkflow.protocol import params

from isonet2core.config import method_traits
from isonet2core.io import output_names
from isonet2core.report import progress
from isonet2scipion import Plugin, convert, ctf_inputs, sampling_inputs
from isonet2scipion.constants import ARCH_CHOICES, CTF_MODE_CHOICES
from isonet2scipion.protocols.core_options import PREDICT_OPTIONS, TRAIN_OPTIONS, coreArgs
from isonet2scipion.protocols.predict_steps import PredictMixin
from isonet2scipion.protocols.protocol_base import ProtIsoNet2Base

STEP_ARGUMENTS_FILE = "step_arguments.json"


def trainingResumeArgs(modelDir: str, stepArguments) -> List[str]:
    """``["--resume", "True"]`` when ``modelDir`` holds the checkpoint of an earlier attempt of
    this very step (same arguments, recorded in ``step_arguments.json``), else ``[]``.

    A folder left by different arguments is emptied first: its checkpoints belong to other
    settings and must be neither resumed nor mixed with the new run's files. The arguments of
    the attempt about to run are recorded before it starts.
    """
    record = json.dumps(stepArguments, sort_keys=True)
    markerPath = os.path.join(modelDir, STEP_ARGUMENTS_FILE)
    previous = None
    if os.path.exists(markerPath):
        with open(markerPath) as f:
            previous = f.read()
    if previous == record:
        hasCheckpoint = any(output_names.is_full_model(name) for name in os.listdir(modelDir))
        return ["--resume", "True"] if hasCheckpoint else []
    if os.path.isdir(modelDir):
        shutil.rmtree(modelDir)
    os.makedirs(modelDir)
    tmp = markerPath + ".tmp"
    with open(tmp, "w") as f:
        f.write(record)
    os.replace(tmp, markerPath)
    return []


class ProtIsoNet2TrainBase(PredictMixin, ProtIsoNet2Base):
    """Shared form and steps of denoise and refine: train, optionally predict, output the
    model (and the predicted tomograms)."""
    _gpu = True
    _ctf = "optional"
    _coreStep = None          # "refine" or "denoise"
    _extraOptions = ()        # options beyond TRAIN_OPTIONS

    def _defineInputParams(self, form):
        super()._defineInputParams(form)
        form.addParam("inputCoordinates", params.PointerParam, pointerClass="SetOfCoordinates3D",
                      allowsNull=True, label="Subtomogram centres (optional)",
                      help="3D coordinates (e.g. picked particles), matched to the tomograms "
                           "by tsId: the training cubes are centred on them instead of drawn "
                           "at random (IsoNet2's rlnBoxFile; one cube per coordinate). "
                           "Coordinates picked at another sampling rate are scaled to the "
                           "tomograms'; those nearer to a face than half a cube are moved "
                           "inwards; tomograms without coordinates get random cubes.")

    def _boxPlan(self, entries=None):
        """``({tsId: int (n, 3) x, y, z centres}, errors, notes)`` of the coordinates input
        (:func:`isonet2scipion.sampling_inputs.box_plan`)."""
        coords = self.inputCoordinates.get()
        if coords is None or self._referenceSet() is None or not self.cube_size.get():
            return {}, [], []
        if entries is None:
            entries, _ = self._collectEntries()
        names = {e.ts_id for e in entries}
        tomos = {ctf_inputs.plain_ts_id(t.getTsId()): t.clone()
                 for t in self._referenceSet().iterItems()}
        shapes = {ts: convert.shape_zyx(t) for ts, t in tomos.items() if ts in names}
        tomos = {ts: t for ts, t in tomos.items() if shapes.get(ts) is not None}
        return sampling_inputs.box_plan(coords, tomos, self.cube_size.get(), shapes)

    def _boxFolder(self) -> str:
        return self._getExtraPath("boxes")

    def _sideInputs(self, entries) -> dict:
        centres, _, _ = self._boxPlan(entries)
        if not centres:
            return {}
        return {"columns": sampling_inputs.box_columns(self._boxFolder(), centres),
                "centres": sampling_inputs.centres_digest(centres)}

    def _writeSideFiles(self, entries):
        centres, errors, _ = self._boxPlan(entries)
        if errors:
            raise ValueError("; ".join(errors))
        for tsId, xyz in centres.items():
            sampling_inputs.write_box_file(sampling_inputs.box_file_path(self._boxFolder(), tsId), xyz)

    def _defineProtocolParams(self, form):
        form.addSection(label="Training")
        self._defineMethodParam(form)
        for opt in TRAIN_OPTIONS:
            opt.addTo(form)
        for opt in self._extraOptions:
            opt.addTo(form)
        form.addParam("pretrained_model", params.PointerParam, pointerClass="IsoNet2Model",
                      allowsNull=True, expertLevel=params.LEVEL_ADVANCED,
                      label="Pre-trained model (optional)",
                      help="Start from this network (same architecture) instead of random "
                           "weights.\n\nIsoNet2 option: --pretrained_model")
        form.addSection(label="Prediction")
        form.addParam("doPredict", params.BooleanParam, default=True,
                      label="Apply the network to the tomograms?",
                      help="Yes: the trained network is applied to the input tomograms and "
                           "the results are an output of this protocol. No: only the model "
                           "(use the predict protocol later).")
        for opt in PREDICT_OPTIONS:
            opt.addTo(form, condition="doPredict")

    def _defineMethodParam(self, form):
        """refine adds its method choice."""

    def _ctfModeApplied(self) -> bool:
        return self.CTF_mode.get() != 0

    def _flipOptions(self) -> list:
        options = super()._flipOptions()
        if self.doPredict.get():
            return options
        return [opt for opt in options if not opt.attr.startswith("predict_")]

    def _phasePlateAdvice(self) -> str:
        return "train with CTF mode None"

    def _method(self, entries) -> str:
        raise NotImplementedError

    def _archText(self) -> str:
        return ARCH_CHOICES[self.arch.get()]

    def _ctfModeText(self) -> Optional[str]:
        text = CTF_MODE_CHOICES[self.CTF_mode.get()]
        return None if text == "None" else text

    def _modelDir(self) -> str:
        return self._getExtraPath("model")

    def _modelPath(self, method) -> str:
        return str(output_names.model_path(self._modelDir(), method, self._archText(), self.cube_size.get()))

    def _insertProcessingSteps(self, entries, convertId):
        method = self._method(entries)
        args = ["--output_dir", self._modelDir()]
        if self._coreStep == "refine":
            args += ["--method", method]
        args += coreArgs(self, TRAIN_OPTIONS) + coreArgs(self, self._extraOptions)
        if self.pretrained_model.get() is not None:
            args += ["--pretrained_model", os.path.abspath(self.pretrained_model.get().getPath())]
        args += self._ncpusArgs() + self._deviceArgs()
        side = {"side": self._sideSignature} if self._sideSignature else {}
        signature = convert.entries_signature(entries, step=self._coreStep, args=args, **side)
        trainId = self._insertFunctionStep(self.trainStep, self._coreStep, args, signature,
                                           prerequisites=[convertId], needsGPU=self._usesGpu())
        outputDeps = [trainId]
        if self.doPredict.get():
            outputDeps = self._insertPredictSteps(entries, [trainId], self._modelPath(method),
                                                  upstream=signature)
        self._insertFunctionStep(self.createOutputStep, method, signature,
                                 prerequisites=outputDeps, needsGPU=False)

    def trainStep(self, step, args, signature):
        """Train on extra/isonet2_tomograms.star. ``signature`` makes the step's arguments change with
        every input the training depends on. A training killed earlier with the same
        arguments (Continue after a crash) resumes from its last checkpoint."""
        resume = trainingResumeArgs(self._modelDir(), [step, list(args), signature])
        Plugin.runCore(self, step, [self._starPath()] + list(args) + resume,
                       gpus=self._stepGpus())

    def createOutputStep(self, method, signature):
        from isonet2scipion.objects import IsoNet2Model
        modelPath = self._modelPath(method)
        if not os.path.exists(modelPath):
            found = sorted(os.listdir(self._modelDir())) if os.path.isdir(self._modelDir()) else []
            raise RuntimeError(f"IsoNet2 wrote no model {modelPath}; the folder holds: "
                               f"{', '.join(found) or 'nothing'}")
        model = IsoNet2Model(path=modelPath, method=method, arch=self._archText(),
                             cubeSize=self.cube_size.get(), ctfMode=self._ctfModeText(),
                             epochs=self.epochs.get())
        outputs = {"model": model}
        if self.doPredict.get():
            entries = convert.entries_from_signature(signature)
            outputs["tomograms"] = self._predictedTomograms(
                entries, denoised=not method_traits(method).fills_wedge, ctfCorrected=self._ctfModeText() is not None)
        self._defineOutputs(**outputs)
        for output in outputs.values():
            self._defineInputRelations(output)
            if self._masks and self.inputMasks.get() is not None:
                self._defineSourceRelation(self.inputMasks, output)
            if self.inputCtfs.get() is not None:
                self._defineSourceRelation(self.inputCtfs, output)
            if self.inputCoordinates.get() is not None:
                self._defineSourceRelation(self.inputCoordinates, output)

    def _validate(self):
        errors = super()._validate()
        cube = self.cube_size.get()
        if cube is None or cube < 16 or cube % 16:
            errors.append(f"cube_size must be a positive multiple of 16, got {cube}")
        elif self._referenceSet() is not None:
            errors += convert.cube_errors({t.getTsId(): t.clone()
                                           for t in self._referenceSet().iterItems()}, cube)
        pre = self.pretrained_model.get()
        if pre is not None:
            if pre.getArch() and pre.getArch() != self._archText():
                errors.append(f"the pre-trained model is a {pre.getArch()} network, not "
                              f"{self._archText()}")
            if not os.path.exists(pre.getPath() or ""):
                errors.append(f"the pre-trained model file {pre.getPath()} does not exist")
        errors += self._boxPlan()[1]
        lr, lrMin = self.learning_rate.get(), self.learning_rate_min.get()
        if lr is not None and lrMin is not None and lrMin > lr:
            errors.append(f"learning_rate_min ({lrMin}) must not exceed learning_rate ({lr})")
        return errors

    def progressLines(self) -> List[str]:
        """The training's last finished epoch, its loss and the time left (from the loss
        history the core writes after every epoch), then the prediction's progress."""
        line = progress.training_progress(progress.read_history(self._modelDir()),
                                          self.epochs.get())
        lines = [f"Training: {line}"] if line else []
        return lines + (self._predictProgress() if self.doPredict.get() else [])

    def _trainSummary(self) -> List[str]:
        lines = self._inputSummary() + self.progressLines()
        if self.inputCoordinates.get() is not None:
            centres, errors, notes = self._boxPlan()
            lines.append(f"Subtomogram centres (rlnBoxFile): {sum(len(c) for c in centres.values())} "
                         f"coordinates on {len(centres)} tomograms")
            lines += errors + notes
        model = getattr(self, "model", None)
        if model is not None:
            lines.append(f"Model: {model}")
        tomos = getattr(self, "tomograms", None)
        if tomos is not None:
            lines.append(f"Predicted tomograms: {tomos.getSize()}")
        return lines
