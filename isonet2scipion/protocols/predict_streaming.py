"""Predict over an open tomogram set (streaming), as Scipion's streaming protocols do (IMOD's).

When the predict protocol starts on a tomogram set that is still open (its producer, e.g. an
IMOD or AreTomo reconstruction in streaming, is still adding tomograms), one generator step
follows the set: each round it reads the set's state, then its items; every tomogram not seen
yet gets its own steps (write its one-row STAR and run ``isonet2 predict``, then register its
output); when the state read was closed, a last step closes the output set. The output set is
defined with the first tomogram, open (``Set.STREAM_OPEN``), and grows as tomograms arrive, so
that the next protocol can follow it too. New steps are stored by ``_stepsCheck``.

Training does not stream: a network trained on part of a set would silently miss the rest,
so the training protocols refuse open inputs (``_openInputErrors``).
"""
import json
import os
import time
from datetime import datetime
from typing import List, Sequence, Tuple
from typing import Set as TypingSet

from pyworkflow.object import Set
from tomo.objects import SetOfTomograms

from isonet2core.io import star
from isonet2scipion import Plugin, convert, ctf_inputs
from isonet2scipion.protocols.predict_steps import PREDICTED_COLUMNS

STREAM_OUTPUT = "tomograms"


def stream_round(entries: Sequence[convert.TomoEntry], handled: TypingSet[str],
                 stream_open: bool) -> Tuple[List[convert.TomoEntry], bool]:
    """One round of the generator: the entries not handled yet (in set order) and whether the
    stream is finished (``stream_open`` was read *before* the items: a closed set's items are
    complete, so after these no tomogram is left)."""
    new = [e for e in entries if e.ts_id not in handled]
    return new, not stream_open


class StreamingPredictMixin:
    """Streaming steps of the predict protocol (module documentation)."""
    _streamSleep = 10.0      # seconds between two looks at an open input

    def _inputIsOpen(self) -> bool:
        refSet = self._referenceSet()
        return refSet is not None and bool(refSet.isStreamOpen())

    def _streamingErrors(self) -> List[str]:
        """An open input needs a thread to follow it besides those that predict."""
        threads = self.numberOfThreads.get() or 1
        if self._inputIsOpen() and threads < 3:
            return [f"the input tomograms are still being produced (an open set): predicting "
                    f"them as they arrive needs at least 3 threads (one follows the set, the "
                    f"others predict), got {threads}"]
        return []

    def _stepsCheck(self):
        """Store the steps the generator inserted while the protocol runs."""
        if getattr(self, "_newSteps", False) and getattr(self, "_streaming", False):
            self.updateSteps()

    def _insertStreamingSteps(self, modelPath, upstream):
        self._streaming = True
        self._insertFunctionStep(self.streamGeneratorStep, str(datetime.now()), modelPath,
                                 upstream, needsGPU=False)

    def _registeredTsIds(self) -> TypingSet[str]:
        out = getattr(self, STREAM_OUTPUT, None)
        return set() if out is None else {t.getTsId() for t in out.iterItems()}

    def streamGeneratorStep(self, stamp, modelPath, upstream):
        """Follow the open input (module documentation). ``stamp`` makes a resumed run insert
        its generator again; tomograms already registered are not predicted twice."""
        self._streaming = True
        refSet = self._referenceSet()
        handled, reported, registerIds = self._registeredTsIds(), set(), []
        args = self._predictArgs(modelPath)
        while True:
            with self._lock:
                refSet.loadAllProperties()
                streamOpen = bool(refSet.isStreamOpen())
            entries, errors = self._collectEntries()
            for error in set(errors) - reported:
                self.warning(f"not predicted (yet): {error}")
            reported |= set(errors)
            new, finished = stream_round(entries, handled, streamOpen)
            for entry in new:
                signature = convert.entries_signature([entry], upstream=upstream)
                predictId = self._insertFunctionStep(self.streamPredictStep, entry.ts_id, args,
                                                     signature, prerequisites=[],
                                                     needsGPU=self._usesGpu())
                registerIds.append(self._insertFunctionStep(
                    self.streamRegisterStep, entry.ts_id, signature,
                    prerequisites=[predictId], needsGPU=False))
                handled.add(entry.ts_id)
                self.info(f"streaming: steps added for {entry.ts_id}")
            if finished:
                self._insertFunctionStep(self.streamCloseStep, prerequisites=registerIds,
                                         needsGPU=False)
                return
            time.sleep(self._streamSleep)

    def streamPredictStep(self, tsId, args, signature):
        """``isonet2 predict`` on the tomogram's own one-row STAR."""
        tomoStar = self._tomoStarPath(tsId)
        os.makedirs(os.path.dirname(tomoStar), exist_ok=True)
        convert.write_tomograms_star(convert.entries_from_signature(signature), tomoStar)
        Plugin.runCore(self, "predict", [tomoStar] + list(args) + ["--tomo_idx", "1"],
                       gpus=self._stepGpus())

    def streamRegisterStep(self, tsId, signature):
        """Append the tomogram's prediction to the output set (defined, open, with the first)."""
        model = self.inputModel.get()
        columns = PREDICTED_COLUMNS[model.isDenoiser()]
        table = star.TomogramsTable.read(self._tomoStarPath(tsId))
        paths = tuple(None if not table.has_column(c) or table.path(0, c) is None
                      else self._projectPath(table.path(0, c)) for c in columns)
        if paths[0] is None or not os.path.exists(paths[0]):
            raise RuntimeError(f"IsoNet2 wrote no {columns[0]} for {tsId} (see the run's log)")
        tomo = next(t.clone() for t in self._referenceSet().iterItems()
                    if ctf_inputs.plain_ts_id(t.getTsId()) == tsId)
        flipped = model.getCtfMode() is not None or self._inputFlipped().get(tsId)
        with self._lock:
            out = getattr(self, STREAM_OUTPUT, None)
            if out is None:
                out = SetOfTomograms.create(self._getPath(), suffix="predicted")
                out.copyInfo(self._referenceSet())
                out.setStreamState(Set.STREAM_OPEN)
                out.write()
                self._defineOutputs(**{STREAM_OUTPUT: out})
                self._defineInputRelations(out)
                self._defineSourceRelation(self.inputModel, out)
            out.append(self._outputItem(tomo, paths, flipped))
            out.write()
            self._store(out)

    def streamCloseStep(self):
        """The input is closed and every tomogram registered: close the output set."""
        with self._lock:
            out = getattr(self, STREAM_OUTPUT, None)
            if out is not None:
                out.setStreamState(Set.STREAM_CLOSED)
                out.write()
                self._store(out)
        self.info(json.dumps({"streaming": "finished", "tomograms": len(self._registeredTsIds())}))
