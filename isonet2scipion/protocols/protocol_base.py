"""Shared inputs and steps of the IsoNet2 protocols (prediction steps: predict_steps.py; the
training protocols' base: train_base.py).

Every protocol writes its inputs to ``extra/isonet2_tomograms.star`` (one conversion, by
:mod:`isonet2scipion.convert`; the RELION-5 export ``extra/relion5/tomograms.star`` beside it:
:mod:`isonet2scipion.protocols.star_export`) as its first step, runs core subcommands on that STAR through
:meth:`isonet2scipion.Plugin.runCore`, and reads the core's output columns back. Per-tomogram
steps (deconv, make-mask, predict) each run on their own copy of the STAR with ``--tomo_idx``
so that parallel steps never write the same file; the output step gathers their columns into
``extra/isonet2_tomograms.star``. Step arguments carry everything a step depends on (the tomogram's
row and the options), so Continue re-runs exactly the steps whose inputs changed.
"""
import json
import os
import shutil
from typing import Dict, List, Optional, Sequence, Tuple

from pwem.protocols import EMProtocol
from pyworkflow import BETA
from pyworkflow.protocol import STEPS_PARALLEL, params
from pyworkflow.utils import Message
from tomo.objects import SetOfTomograms, SetOfTomoMasks, Tomogram, TomoMask

from isonet2core.io import star
from isonet2scipion import Plugin, convert, ctf_inputs
from isonet2scipion.constants import (
    HALF_ORDER_AUTO,
    HALF_ORDER_CHOICES,
    HALVES_CHOICES,
    HALVES_LINKED,
    HALVES_NONE,
    HALVES_SEPARATE,
    PER_TOMOGRAM_DIR,
    TOMOGRAMS_STAR,
)
from isonet2scipion.protocols.core_options import OptionalGE
from isonet2scipion.protocols.ctf_state import CtfStateMixin
from isonet2scipion.protocols.star_export import StarExportMixin

GPU_STEPS = ("refine", "denoise", "predict")   # core steps that run on GPUs


# ------------------------------------------------------------------ the base protocol
class ProtIsoNet2Base(StarExportMixin, CtfStateMixin, EMProtocol):
    """Shared inputs of the IsoNet2 protocols (not shown in the GUI itself)."""
    _devStatus = BETA
    stepsExecutionMode = STEPS_PARALLEL
    _halves = "optional"     # "required" (Noise2Noise), "optional", "none"
    _ctf = "optional"        # "none" (no CTF inputs), "optional", "required" (always needs defocus)
    _masks = False           # optional SetOfTomoMasks matched by tsId
    _gpu = False             # steps use GPUs (hidden useGpu / gpuList)
    _threads = 2             # default Scipion threads (1 + parallel step workers)
    _streamingInputs = ()    # labels of inputs this protocol follows while open (streaming)

    # -------------------------- form
    def _defineParams(self, form):
        form.addSection(label=Message.LABEL_INPUT)
        self._defineInputParams(form)
        self._defineProtocolParams(form)
        form.addParallelSection(threads=self._threads, mpi=0, binThreads=4,
                                binThreadsHelp="CPU threads of each IsoNet2 process "
                                               "(IsoNet2 option --ncpus).")
        if self._gpu:
            form.addHidden(params.USE_GPU, params.BooleanParam, default=True,
                           label="Use GPU?", help="No: run on CPU (slow for training).")
            form.addHidden(params.GPU_LIST, params.StringParam, default="0",
                           label="GPU IDs", help="GPU ids, e.g. 0 or 0 1 (several GPUs train "
                                                 "with DistributedDataParallel).")

    def _defineInputParams(self, form):
        tomoHelp = ("Tomograms with their tsIds; pixel size from the sampling rate, voltage, "
                    "Cs, amplitude contrast and tilt range from the acquisition.")
        if self._halves == "none":
            form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms",
                          important=True, label="Tomograms", help=tomoHelp)
        else:
            choices = HALVES_CHOICES if self._halves == "optional" else HALVES_CHOICES[:2]
            form.addParam("halvesSource", params.EnumParam, choices=choices,
                          default=HALVES_LINKED, display=params.EnumParam.DISPLAY_HLIST,
                          label="Even/odd halves",
                          help="Where the even and odd half tomograms come from: the half maps "
                               "linked to each tomogram (IMOD, AreTomo reconstructions), two "
                               "separate sets paired by tsId, or none (full tomograms only)."
                               + (" Noise2Noise needs the halves." if self._halves == "required"
                                  else ""))
            form.addParam("inputTomograms", params.PointerParam, pointerClass="SetOfTomograms",
                          allowsNull=True, important=True, condition=f"halvesSource != {HALVES_SEPARATE}",
                          label="Tomograms", help=tomoHelp)
            form.addParam("halfOrder", params.EnumParam, choices=HALF_ORDER_CHOICES,
                          default=HALF_ORDER_AUTO, condition=f"halvesSource == {HALVES_LINKED}",
                          expertLevel=params.LEVEL_ADVANCED, label="Order of the linked halves",
                          help="auto: the file names decide (even/EVN/half1 vs odd/ODD/half2); "
                               "without such tags the list is read as [odd, even], the order "
                               "IMOD and AreTomo store. Choose an order to force it.")
            form.addParam("inputEven", params.PointerParam, pointerClass="SetOfTomograms",
                          allowsNull=True, important=True,
                          condition=f"halvesSource == {HALVES_SEPARATE}", label="Even tomograms",
                          help="Tomograms reconstructed from the even frames; paired with the "
                               "odd set by tsId (tsIds that differ only by an even/odd word, "
                               "e.g. TS_01_even / TS_01_odd, are paired too).")
            form.addParam("inputOdd", params.PointerParam, pointerClass="SetOfTomograms",
                          allowsNull=True, important=True,
                          condition=f"halvesSource == {HALVES_SEPARATE}", label="Odd tomograms",
                          help="Tomograms reconstructed from the odd frames.")
        if self._masks:
            form.addParam("inputMasks", params.PointerParam, pointerClass="SetOfTomoMasks",
                          allowsNull=True, label="Masks (optional)",
                          help="Sampling masks (IsoNet2 make mask), matched by tsId: "
                               "subtomograms are drawn inside them.")
        if self._ctf != "none":
            self._defineCtfParams(form)
        self._defineTiltParams(form)
        if not self._streamingInputs:
            form.addParam("inputsNote", params.LabelParam,
                          label="Inputs still being produced (an open set, e.g. while IMOD or "
                                "Warp run) are refused: run this protocol when they have finished.")

    def _defineCtfParams(self, form):
        """The tilt series, the CTF estimations and the fallback defocus."""
        form.addParam("inputTiltSeries", params.PointerParam, pointerClass="SetOfTiltSeries",
                      allowsNull=True, label="Tilt series (optional)",
                      help="The tilt series the tomograms were reconstructed from (e.g. the "
                           "output of IMOD's CTF correction when the tomograms were "
                           "reconstructed from it), matched by tsId. They tell whether the "
                           "tomograms are CTF phase flipped (Scipion flags the tilt series, "
                           "not the tomograms reconstructed from them) and which views "
                           "were used (the tilt range). Without them, the tilt series of "
                           "the CTF estimations are used where they can tell.")
        form.addParam("inputCtfs", params.PointerParam, pointerClass="SetOfCTFTomoSeries",
                      allowsNull=True, label="CTF estimations (optional)",
                      help="Matched to the tomograms by tsId (an even/odd tag at the end of "
                           "a tomogram's tsId, e.g. TS_01_even, is ignored). The defocus of "
                           "a tomogram is the mean of defocus U and V of the tilt image "
                           "nearest 0 degrees. Phase-plate data (a CTF phase shift above "
                           f"{ctf_inputs.PHASE_PLATE_MIN_DEG:g} degrees) are refused where "
                           "a CTF is applied (the deconvolution, the CTF modes): IsoNet2's "
                           "CTF model has no phase shift; elsewhere they are reported.")
        form.addParam("defocus", params.FloatParam, allowsNull=True,
                      label="Defocus (Å)",
                      help="Defocus at 0 degrees tilt, underfocus positive, for the "
                           "tomograms that no CTF estimation covers (IsoNet2 option "
                           "--defocus)." + (" Required without CTF estimations."
                                            if self._ctf == "required" else
                                            " Needed by the CTF modes when there are "
                                            "no CTF estimations."),
                      validators=[OptionalGE(0, "defocus must not be negative "
                                                "(underfocus is positive)")])

    def _defineTiltParams(self, form):
        form.addParam("tiltFromAcquisition", params.BooleanParam, default=True,
                      label="Tilt range from the data?",
                      help="Yes: per tomogram, the views enabled in its tilt series (the "
                           "input above, else the one of its CTF estimation) and in its CTF "
                           "estimation (tomo's rule for the views in common; IMOD and AreTomo "
                           "disable excluded views but copy the nominal acquisition range), "
                           "else its acquisition's angle min/max. The summary says which was "
                           "used. No: the range below for every tomogram.")
        form.addParam("tilt_min", params.FloatParam, default=-60.0,
                      condition="not tiltFromAcquisition", label="Minimum tilt (deg)",
                      help="IsoNet2 option --tilt_min.")
        form.addParam("tilt_max", params.FloatParam, default=60.0,
                      condition="not tiltFromAcquisition", label="Maximum tilt (deg)",
                      help="IsoNet2 option --tilt_max.")

    def _defineProtocolParams(self, form):
        """Subclasses add their own sections here."""

    # -------------------------- inputs -> entries
    def _halvesSourceValue(self) -> int:
        if self._halves == "none":
            return HALVES_NONE
        return self.halvesSource.get()

    def _referenceSet(self) -> Optional[SetOfTomograms]:
        """The set whose items the outputs follow (tomograms, or the even set)."""
        if self._halvesSourceValue() == HALVES_SEPARATE:
            return self.inputEven.get()
        return self.inputTomograms.get()

    def _referencePointer(self):
        if self._halvesSourceValue() == HALVES_SEPARATE:
            return self.inputEven
        return self.inputTomograms

    def _ctfModeApplied(self) -> bool:
        """This run applies a CTF (deconvolution, a CTF-mode training or model): it needs a
        defocus, the phase-flipped state and a CTF the core can represent."""
        return self._ctf == "required"

    def _needsDefocus(self) -> bool:
        return self._ctfModeApplied()

    def _seriesInfo(self) -> ctf_inputs.CtfInfo:
        """What the CTF estimations and tilt series inputs tell per plain tsId."""
        if self._ctf == "none":
            return ctf_inputs.CtfInfo({}, {}, [])
        return ctf_inputs.ctf_by_ts_id(self.inputCtfs.get(), self.inputTiltSeries.get())

    def _collectEntries(self) -> Tuple[List[convert.TomoEntry], List[str]]:
        errors: List[str] = []
        source = self._halvesSourceValue()
        full = even = odd = None
        if source == HALVES_SEPARATE:
            if self.inputEven.get() is None or self.inputOdd.get() is None:
                return [], ["choose both the even and the odd tomograms"]
            even, e1 = convert.tomograms_by_ts_id(self.inputEven.get(), "even tomograms")
            odd, e2 = convert.tomograms_by_ts_id(self.inputOdd.get(), "odd tomograms")
            errors += e1 + e2
            if self.inputEven.get().getSamplingRate() != self.inputOdd.get().getSamplingRate():
                errors.append(f"the even and odd sets have different sampling rates "
                              f"({self.inputEven.get().getSamplingRate()} and "
                              f"{self.inputOdd.get().getSamplingRate()} Å/px)")
        else:
            if self.inputTomograms.get() is None:
                return [], ["choose the input tomograms"]
            full, e = convert.tomograms_by_ts_id(self.inputTomograms.get(), "tomograms")
            errors += e
        info = self._seriesInfo()
        errors += info.errors
        masks = None
        if self._masks and self.inputMasks.get() is not None:
            masks, e = convert.tomograms_by_ts_id(self.inputMasks.get(), "masks")
            errors += e
        tilt = None if self.tiltFromAcquisition.get() else (self.tilt_min.get(),
                                                            self.tilt_max.get())
        refSet = self._referenceSet()
        entries, e = convert.collect_entries(
            full=full, even=even, odd=odd,
            halves="none" if source == HALVES_NONE else self._halves,
            half_order=self.halfOrder.get() if source == HALVES_LINKED else HALF_ORDER_AUTO,
            defocus=info.defocus_a,
            defocus_a=self.defocus.get() if self._ctf != "none" else None,
            need_defocus=self._needsDefocus(), tilt_range=tilt, tilt_ranges=info.tilt_ranges,
            tilt_sources=info.tilt_sources, ts_pixel_sizes=info.ts_pixel_size_a,
            ts_pixel_sources=info.ts_pixel_sources, masks=masks,
            set_acquisition=refSet.getAcquisition() if refSet is not None else None)
        return entries, errors + e

    def _inputPointers(self):
        """``(label, pointer)`` of the inputs this protocol's form shows."""
        names = [("tomograms", "inputTomograms"), ("even tomograms", "inputEven"),
                 ("odd tomograms", "inputOdd"), ("masks", "inputMasks"),
                 ("tilt series", "inputTiltSeries"), ("CTF estimations", "inputCtfs"),
                 ("coordinates", "inputCoordinates")]
        return [(label, getattr(self, attr)) for label, attr in names if hasattr(self, attr)]

    def _openInputErrors(self) -> List[str]:
        """Inputs still being produced (sets left open by a streaming protocol) are refused:
        processing a partial snapshot would silently miss the items still to come."""
        errors = []
        for label, pointer in self._inputPointers():
            if label in self._streamingInputs:
                continue
            obj = pointer.get()
            if obj is not None and hasattr(obj, "isStreamOpen") and obj.isStreamOpen():
                owner = pointer.getObjValue()
                name = owner.getRunName() if hasattr(owner, "getRunName") else str(obj)
                errors.append(f"the input {label} ({name}) are "
                              f"still being produced (the set is open): run this protocol when "
                              f"that protocol has finished")
        return errors

    def _shapeErrors(self) -> List[str]:
        """Masks of another shape or sampling than their tomogram."""
        if not self._masks or self.inputMasks.get() is None or self._referenceSet() is None:
            return []
        tomos = {t.getTsId(): t.clone() for t in self._referenceSet().iterItems()}
        masks = {m.getTsId(): m.clone() for m in self.inputMasks.get().iterItems()}
        return convert.mask_mismatches(tomos, masks)

    # -------------------------- paths
    def _starPath(self) -> str:
        return self._getExtraPath(TOMOGRAMS_STAR)

    def _tomoStarPath(self, tsId: str) -> str:
        return self._getExtraPath(PER_TOMOGRAM_DIR, f"{tsId}.star")

    @staticmethod
    def _projectPath(path) -> str:
        """``path`` relative to the project folder (the working directory of the steps) when
        it lies inside it, as Scipion stores file names."""
        path = os.path.abspath(str(path))
        rel = os.path.relpath(path)
        return path if rel.startswith("..") else rel

    # -------------------------- steps
    def _insertAllSteps(self):
        entries, errors = self._collectEntries()
        if errors:
            raise ValueError("; ".join(errors))
        side = self._sideInputs(entries)
        self._sideSignature = json.dumps(side, sort_keys=True) if side else ""
        convertId = self._insertFunctionStep(self.convertInputStep,
                                             convert.entries_signature(entries, **side),
                                             needsGPU=False)
        self._insertProcessingSteps(entries, convertId)

    def _sideInputs(self, entries) -> dict:
        """Inputs beyond the entries, as options of the conversion step: ``columns``
        (``{tsId: {column: value}}``, merged into the STAR: mask boundaries, box files) and
        what tells when files this run writes from its inputs change (``_writeSideFiles``).
        Steps that read them get ``self._sideSignature`` among their arguments."""
        return {}

    def _writeSideFiles(self, entries):
        """Write the files the side columns name that come from Scipion objects (box files)."""

    def _insertProcessingSteps(self, entries, convertId):
        raise NotImplementedError

    def convertInputStep(self, signature):
        """Write extra/isonet2_tomograms.star (the core runs on it) from the entries encoded in
        ``signature``, and the RELION-5 export (extra/relion5/tomograms.star)."""
        entries = convert.entries_from_signature(signature)
        os.makedirs(self._getExtraPath(PER_TOMOGRAM_DIR), exist_ok=True)
        convert.write_tomograms_star(entries, self._starPath())
        self._writeSideFiles(entries)
        columns = json.loads(signature).get("options", {}).get("columns")
        if columns:
            convert.merge_columns(self._starPath(), columns)
        os.makedirs(self._relion5Folder(), exist_ok=True)
        self.exportRelion5(entries)

    def _insertPerTomogramSteps(self, entries, prerequisites, step, args, needsGPU,
                                upstream=""):
        """One ``tomogramStep`` per entry; returns their step ids. ``upstream`` is a string
        the results also depend on (e.g. the training's signature)."""
        ids = []
        for index, entry in enumerate(entries, start=1):
            dependsOn = json.dumps({"entry": entry.to_dict(), "upstream": upstream},
                                   sort_keys=True)
            ids.append(self._insertFunctionStep(
                self.tomogramStep, step, index, entry.ts_id, list(args), dependsOn,
                prerequisites=list(prerequisites), needsGPU=needsGPU))
        return ids

    def tomogramStep(self, step, index, tsId, args, dependsOn):
        """Run core ``step`` on row ``index`` (``--tomo_idx``) of a private copy of the STAR.
        ``dependsOn`` is not read: it makes the step's arguments change with its inputs."""
        tomoStar = self._tomoStarPath(tsId)
        shutil.copyfile(self._starPath(), tomoStar)
        Plugin.runCore(self, step, [tomoStar] + list(args) + ["--tomo_idx", str(index)],
                       gpus=self._stepGpus() if step in GPU_STEPS else None)

    def _gatherColumns(self, entries, columns) -> Dict[str, Dict[str, Optional[str]]]:
        """``{tsId: {column: project-relative path}}`` from the per-tomogram STAR copies;
        also written into extra/isonet2_tomograms.star. Raises naming the tomograms without output."""
        result, missing = {}, []
        for entry in entries:
            table = star.TomogramsTable.read(self._tomoStarPath(entry.ts_id))
            row = [table.tomo_name(r) for r in range(len(table))].index(entry.ts_id)
            values = {}
            for column in columns:
                path = table.path(row, column) if table.has_column(column) else None
                values[column] = None if path is None else self._projectPath(path)
            if values[columns[0]] is None or not os.path.exists(values[columns[0]]):
                missing.append(entry.ts_id)
            result[entry.ts_id] = values
        if missing:
            raise RuntimeError(f"IsoNet2 wrote no {columns[0]} for: {', '.join(missing)} "
                               f"(see the run's log)")
        convert.merge_columns(self._starPath(), {
            ts: {c: os.path.abspath(v) for c, v in cols.items() if v is not None}
            for ts, cols in result.items()})
        return result

    def _usesGpu(self) -> bool:
        """GPU steps claim Scipion's GPU slots only when the GPU is switched on, so that CPU
        runs are not serialised on a GPU slot they do not use."""
        return self._gpu and bool(self.useGpu.get())

    def _stepGpus(self) -> Optional[List[int]]:
        """GPUs of the current step for CUDA_VISIBLE_DEVICES ([] when the GPU is switched off:
        the core then sees none and runs on the CPU). Under a queue, None: the job's own
        CUDA_VISIBLE_DEVICES, which the queue system set to the GPUs it gave the job, is never
        overwritten (Scipion's step GPU ids are renumbered from 0 there and name no GPU);
        the core then uses every GPU the job has (several: distributed training)."""
        if not self._usesGpu():
            return []
        if self.useQueue():
            return None
        return list(self._stepsExecutor.getGpuList() or [])

    def _deviceArgs(self) -> List[str]:
        return [] if self._usesGpu() else ["--device", "cpu"]

    def _ncpusArgs(self) -> List[str]:
        return ["--ncpus", str(max(1, self.binThreads.get() or 1))]

    # -------------------------- outputs
    def _outputTomograms(self, paths: Dict[str, Tuple[str, Optional[str], Optional[str]]],
                         suffix="", ctfCorrected=False) -> SetOfTomograms:
        """A set following the reference set's items: ``paths[tsId] = (map, even, odd)``;
        half maps are stored as [odd, even] like IMOD and AreTomo do. Items carry the plain
        tsId (``ctf_inputs.plain_ts_id``). The CTF-corrected flag is set when ``ctfCorrected``
        (this step corrected the CTF) or the input was phase flipped (its flag, its tilt
        series' flag, or the form's choice: see ``_inputFlipped``)."""
        inSet = self._referenceSet()
        flipped = self._inputFlipped()
        outSet = SetOfTomograms.create(self._getPath(), suffix=suffix or None)
        outSet.copyInfo(inSet)
        for tomo in inSet.iterItems():
            tsId = ctf_inputs.plain_ts_id(tomo.getTsId())
            if tsId in paths:
                outSet.append(self._outputItem(tomo, paths[tsId], ctfCorrected or flipped.get(tsId)))
        return outSet

    @staticmethod
    def _outputItem(tomo, paths: Tuple[str, Optional[str], Optional[str]], flipped) -> Tomogram:
        """The output Tomogram of input ``tomo``: ``paths = (map, even, odd)``, halves stored
        [odd, even], the plain tsId, CTF-corrected when the input was or ``flipped``."""
        path, evenPath, oddPath = paths
        out = Tomogram()
        out.copyInfo(tomo)
        out.setTsId(ctf_inputs.plain_ts_id(tomo.getTsId()))
        out.setLocation(path)
        out.setHalfMaps([oddPath, evenPath] if evenPath and oddPath else [])
        out.setCtfCorrected(bool(flipped or tomo.ctfCorrected()))
        return out

    def _outputMasks(self, paths: Dict[str, str]) -> SetOfTomoMasks:
        inSet = self._referenceSet()
        outSet = SetOfTomoMasks.create(self._getPath())
        outSet.copyInfo(inSet)
        for tomo in inSet.iterItems():
            tsId = ctf_inputs.plain_ts_id(tomo.getTsId())
            if tsId not in paths:
                continue
            mask = TomoMask()
            mask.copyInfo(tomo)
            mask.setTsId(tsId)
            mask.setLocation(paths[tsId])
            mask.setHalfMaps([])
            mask.setVolName(tomo.getFileName())
            outSet.append(mask)
        return outSet

    def _defineInputRelations(self, output):
        if self._halvesSourceValue() == HALVES_SEPARATE:
            self._defineSourceRelation(self.inputEven, output)
            self._defineSourceRelation(self.inputOdd, output)
        else:
            self._defineSourceRelation(self.inputTomograms, output)

    # -------------------------- info
    def _validate(self):
        errors = self._openInputErrors()
        if errors:
            return errors
        errors = self._collectEntries()[1]
        return errors + self._shapeErrors() + self._ctfStateErrors()

    def _inputSummary(self) -> List[str]:
        source = self._halvesSourceValue()
        lines = []
        refSet = self._referenceSet()
        if refSet is not None:
            lines.append(f"Input: {refSet.getSize()} tomograms"
                         + ("" if source == HALVES_NONE else
                            " with even/odd halves " + ("(separate sets)" if source ==
                                                        HALVES_SEPARATE else "(linked)")))
            try:
                entries, _ = self._collectEntries()
            except Exception as exc:  # the summary must show even when an input is broken
                lines.append(f"Inputs cannot be read: {exc}")
                entries = []
            lines += tiltSummary(entries) + self._starFilesSummary(entries)
            try:
                lines += self._ctfStateSummary()
            except Exception as exc:  # the summary must show even when an input is broken
                lines.append(f"The CTF state of the inputs cannot be read: {exc}")
        return lines

    def _citations(self):
        return ["Liu2025IsoNet2"]


def tiltSummary(entries: Sequence[convert.TomoEntry], limit: int = 6) -> List[str]:
    """One line per tomogram (at most ``limit``): its tilt range and where it came from."""
    lines = [f"Tilt range {e.ts_id}: {e.tilt_min_deg:g} to {e.tilt_max_deg:g} deg "
             f"({e.tilt_source})" for e in entries[:limit]]
    if len(entries) > limit:
        lines.append(f"... and {len(entries) - limit} more tomograms")
    return lines
