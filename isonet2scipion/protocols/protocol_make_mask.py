"""IsoNet2 make mask: SetOfTomograms -> SetOfTomoMasks (one mask per tomogram)."""
from enum import Enum

from pyworkflow.protocol import params
from tomo.objects import SetOfTomoMasks

from isonet2core.io import star
from isonet2scipion import convert, sampling_inputs
from isonet2scipion.methods import DECONV_REFERENCES, withProgram
from isonet2scipion.protocols.core_options import MASK_OPTIONS, coreArgs
from isonet2scipion.protocols.protocol_base import ProtIsoNet2Base


class MaskOutputs(Enum):
    tomoMasks = SetOfTomoMasks


class ProtIsoNet2MakeMask(ProtIsoNet2Base):
    """Sampling masks from local density and local standard deviation: training cubes are
    then drawn where there is specimen, not empty ice. Deconvolved tomograms give better
    masks. One step per tomogram, in parallel."""
    _label = "make mask"
    _possibleOutputs = MaskOutputs
    _halves = "none"
    _ctf = "none"
    _threads = 3

    def _defineProtocolParams(self, form):
        form.addSection(label="Mask")
        for opt in MASK_OPTIONS:
            opt.addTo(form)
        form.addParam("boundaryFolder", params.PathParam, allowsNull=True,
                      label="Mask boundaries (optional)",
                      help="A folder of IMOD models (.mod) of the lamella outlines, one per "
                           "tomogram, named by its tsId (TS_01.mod or TS_01_<anything>.mod). "
                           "The mask keeps only the region a model outlines, read as the "
                           "official IsoNet2 reads rlnMaskBoundary: the points give the "
                           "outline in x/y, and when the last two points lie 10 slices or "
                           "more apart in z they give the z range instead. Draw them in 3dmod "
                           "on the tomogram itself (its voxels). Tomograms without a model "
                           "keep the plain mask.")

    def _boundaries(self, entries=None):
        """``({tsId: .mod path}, errors)`` of the boundary folder for the input tomograms."""
        if entries is None:
            entries, _ = self._collectEntries()
        return sampling_inputs.boundary_files(self.boundaryFolder.get(),
                                              [e.ts_id for e in entries])

    def _sideInputs(self, entries) -> dict:
        paths, _ = self._boundaries(entries)
        return {"columns": sampling_inputs.boundary_columns(paths)} if paths else {}

    def _insertProcessingSteps(self, entries, convertId):
        args = ["--input_column", star.TOMO_FULL, "--output_dir", self._getExtraPath("mask")]
        args += coreArgs(self, MASK_OPTIONS)
        stepIds = self._insertPerTomogramSteps(entries, [convertId], "make-mask", args,
                                               needsGPU=False, upstream=self._sideSignature)
        self._insertFunctionStep(self.createOutputStep,
                                 convert.entries_signature(entries, args=args),
                                 prerequisites=stepIds, needsGPU=False)

    def createOutputStep(self, signature):
        entries = convert.entries_from_signature(signature)
        paths = self._gatherColumns(entries, [star.MASK])
        out = self._outputMasks({ts: cols[star.MASK] for ts, cols in paths.items()})
        self._defineOutputs(**{MaskOutputs.tomoMasks.name: out})
        self._defineInputRelations(out)

    def _validate(self):
        errors = super()._validate()
        return errors + (self._boundaries()[1] if self.boundaryFolder.get() else [])

    def _summary(self):
        lines = self._inputSummary()
        if self.boundaryFolder.get():
            paths, errors = self._boundaries()
            lines.append(f"Mask boundaries (rlnMaskBoundary): {len(paths)} IMOD models from "
                         f"{self.boundaryFolder.get()}" + (f" ({'; '.join(errors)})" if errors else ""))
        out = getattr(self, MaskOutputs.tomoMasks.name, None)
        if out is not None:
            lines.append(f"Masks: {out.getSize()} (density {self.density_percentage.get()} %, "
                         f"std {self.std_percentage.get()} %, z crop {self.z_crop.get()})")
        return lines

    def _methods(self):
        out = getattr(self, MaskOutputs.tomoMasks.name, None)
        if out is None:
            return []
        return withProgram([
                f"Sampling masks of {out.getSize()} tomograms were computed as in IsoNet "
                f"[Liu2022IsoNet] (patch size {self.patch_size.get()}, density "
                f"{self.density_percentage.get()} %, standard deviation "
                f"{self.std_percentage.get()} %, z crop {self.z_crop.get()})"
                + (", limited to lamella outlines drawn as IMOD models"
                   if self.boundaryFolder.get() else "") + "."])

    def _citations(self):
        return list(DECONV_REFERENCES)
