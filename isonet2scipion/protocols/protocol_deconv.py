"""IsoNet2 CTF deconvolution: SetOfTomograms -> deconvolved SetOfTomograms."""
from enum import Enum

from tomo.objects import SetOfTomograms

from isonet2core.io import star
from isonet2scipion import convert
from isonet2scipion.methods import DECONV_REFERENCES, withProgram
from isonet2scipion.protocols.core_options import DECONV_OPTIONS, coreArgs
from isonet2scipion.protocols.protocol_base import ProtIsoNet2Base


class DeconvOutputs(Enum):
    tomograms = SetOfTomograms


class ProtIsoNet2Deconv(ProtIsoNet2Base):
    """CTF deconvolution of tomograms (IsoNet1/Warp-style Wiener-like filter built from the
    CTF at 0 degrees): boosts low-resolution contrast for viewing, mask making and
    single-map (isonet2) refinement. One step per tomogram, in parallel."""
    _label = "deconvolve tomograms"
    _possibleOutputs = DeconvOutputs
    _halves = "none"
    _ctf = "required"
    _threads = 3

    def _defineProtocolParams(self, form):
        form.addSection(label="Deconvolution")
        for opt in DECONV_OPTIONS:
            opt.addTo(form)

    def _phasePlateAdvice(self) -> str:
        return "the deconvolution filter is built from that CTF; do not deconvolve these data"

    def _insertProcessingSteps(self, entries, convertId):
        args = ["--input_column", star.TOMO_FULL, "--output_dir", self._getExtraPath("deconv")]
        args += coreArgs(self, DECONV_OPTIONS) + self._ncpusArgs()
        stepIds = self._insertPerTomogramSteps(entries, [convertId], "deconv", args, needsGPU=False)
        self._insertFunctionStep(self.createOutputStep, convert.entries_signature(entries, args=args),
                                 prerequisites=stepIds, needsGPU=False)

    def createOutputStep(self, signature):
        entries = convert.entries_from_signature(signature)
        paths = self._gatherColumns(entries, [star.DECONV])
        out = self._outputTomograms({ts: (cols[star.DECONV], None, None)
                                     for ts, cols in paths.items()}, ctfCorrected=True)
        self._defineOutputs(**{DeconvOutputs.tomograms.name: out})
        self._defineInputRelations(out)

    def _summary(self):
        lines = self._inputSummary()
        out = getattr(self, DeconvOutputs.tomograms.name, None)
        if out is not None:
            lines.append(f"Deconvolved tomograms: {out.getSize()} (snrfalloff "
                         f"{self.snrfalloff.get()}, deconvstrength {self.deconvstrength.get()})")
        return lines

    def _methods(self):
        out = getattr(self, DeconvOutputs.tomograms.name, None)
        if out is None:
            return []
        return withProgram([
            f"{out.getSize()} tomograms were CTF-deconvolved as in IsoNet [Liu2022IsoNet] "
            f"(SNR fall-off {self.snrfalloff.get()}, strength {self.deconvstrength.get()}, "
            f"high-pass {self.highpassnyquist.get()} of Nyquist)."])

    def _citations(self):
        return list(DECONV_REFERENCES)
