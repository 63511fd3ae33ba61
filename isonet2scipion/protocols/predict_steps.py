"""Per-tomogram ``isonet2 predict`` steps and their output set, shared by the predict
protocol and the training protocols (which predict after training)."""
import os
from typing import List

from tomo.objects import SetOfTomograms

from isonet2core.io import star
from isonet2scipion import convert
from isonet2scipion.constants import PER_TOMOGRAM_DIR
from isonet2scipion.protocols.core_options import PREDICT_OPTIONS, coreArgs

PREDICTED_COLUMNS = {
    False: (star.CORRECTED, star.CORRECTED_HALF1, star.CORRECTED_HALF2),
    True: (star.DENOISED, star.DENOISED_HALF1, star.DENOISED_HALF2),
}


class PredictMixin:
    """Per-tomogram ``isonet2 predict`` steps and their output set."""

    def _predictProgress(self) -> List[str]:
        """``Predicted k of n tomograms`` once the steps have started: a tomogram counts when
        its step's STAR copy names an output file that exists."""
        folder = self._getExtraPath(PER_TOMOGRAM_DIR)
        if not os.path.isdir(folder) or not os.path.exists(self._starPath()):
            return []
        total = len(star.TomogramsTable.read(self._starPath()))
        columns = [cols[0] for cols in PREDICTED_COLUMNS.values()]
        done = 0
        for name in os.listdir(folder):
            for column in columns:
                paths = convert.read_column(os.path.join(folder, name), column)
                if any(p is not None and os.path.exists(p) for p in paths.values()):
                    done += 1
                    break
        return [f"Predicted {done} of {total} tomograms"] if done else []

    def _predictArgs(self, modelPath) -> List[str]:
        """The arguments of ``isonet2 predict`` after the STAR."""
        args = [os.path.abspath(modelPath), "--output_dir", self._getExtraPath("predicted")]
        return args + coreArgs(self, PREDICT_OPTIONS) + self._ncpusArgs() + self._deviceArgs()

    def _insertPredictSteps(self, entries, prerequisites, modelPath, upstream):
        args = self._predictArgs(modelPath)
        return self._insertPerTomogramSteps(entries, prerequisites, "predict", args,
                                            needsGPU=self._usesGpu(), upstream=upstream)

    def _predictedTomograms(self, entries, denoised: bool, ctfCorrected: bool) -> SetOfTomograms:
        """``ctfCorrected``: the network was trained with a CTF mode, so it corrects the CTF."""
        full, half1, half2 = PREDICTED_COLUMNS[denoised]
        paths = self._gatherColumns(entries, [full, half1, half2])
        return self._outputTomograms({ts: (cols[full], cols[half1], cols[half2])
                                      for ts, cols in paths.items()}, suffix="predicted",
                                     ctfCorrected=ctfCorrected)
