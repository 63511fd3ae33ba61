"""Viewer of IsoNet2 predictions: raw beside corrected (or denoised) tomograms.

For ``isonet2 - predict`` (and refine/denoise runs that predicted): per tomogram the central
orthoslices and Fourier XZ slices of the input beside the output, and the FSC between the
predictions of the even and odd halves (figures by the core's ``isonet2 report``, run
in the background behind a progress line, see :mod:`.views`); and the output set opened in tomo's tomogram viewer.
"""
import os
from typing import List

from pyworkflow.protocol import params
from pyworkflow.viewer import DESKTOP_TKINTER, MessageView, ProtocolViewer
from tomo.viewers.viewers_data import TomoDataViewer

from isonet2core.io import star
from isonet2scipion.constants import TOMOGRAMS_STAR
from isonet2scipion.protocols import ProtIsoNet2Predict
from isonet2scipion.viewers.views import ImageView, figureViews

FIGURES_DIR = "figures"


class TomogramFiguresMixin:
    """Form entries and handlers for the tomogram figures of a protocol whose
    ``extra/isonet2_tomograms.star`` lists the predicted maps and whose output set is ``tomograms``."""

    @classmethod
    def getClassLabel(cls, prependPackageName=True):
        # pyworkflow links plugins to protocol classes only; a viewer's label would read
        # "missing -<label>" in its window header
        return cls._label

    def _tomogramNames(self) -> List[str]:
        path = self.protocol._getExtraPath(TOMOGRAMS_STAR)
        if not os.path.exists(path):
            return []
        table = star.TomogramsTable.read(path)
        return [table.tomo_name(row) for row in range(len(table))]

    def _defineTomogramParams(self, form):
        names = self._tomogramNames() or ["(no tomograms yet)"]
        form.addParam("tomogram", params.EnumParam, choices=names, default=0,
                      display=params.EnumParam.DISPLAY_COMBO, label="Tomogram",
                      help="The tomogram (tsId) whose figures are shown.")
        form.addParam("displayOrthoslices", params.LabelParam,
                      label="Orthoslices: input and output",
                      help="Central XY and XZ slices (5 slices averaged) of the input tomogram "
                           "beside the corrected or denoised one.")
        form.addParam("displayFourier", params.LabelParam,
                      label="Fourier XZ slices (missing wedge)",
                      help="Log amplitude of the (kz, kx) plane: the missing wedge is the dark "
                           "double sector around kz in the input; a corrected map fills it.")
        form.addParam("displayFsc", params.LabelParam, label="Even/odd FSC",
                      help="Fourier shell correlation between the even and odd halves, before "
                           "and after (with even/odd inputs).")
        form.addParam("displayTomograms", params.LabelParam, label="Open the output tomograms",
                      help="The output set in Scipion's tomogram viewer.")

    def _tomogramHandlers(self):
        return {"displayOrthoslices": self._showOrthoslices,
                "displayFourier": self._showFourier,
                "displayFsc": self._showFsc,
                "displayTomograms": self._showTomograms}

    def _selectedTomogram(self):
        """(rlnIndex, name) of the chosen tomogram, or None."""
        path = self.protocol._getExtraPath(TOMOGRAMS_STAR)
        if not os.path.exists(path):
            return None
        table = star.TomogramsTable.read(path)
        row = self.tomogram.get() or 0
        if row >= len(table):
            return None
        return table.index(row), table.tomo_name(row)

    def _tomogramFigure(self, suffix, what) -> list:
        """The figure's view; in the GUI a progress window first while the core makes it."""
        selected = self._selectedTomogram()
        if selected is None:
            return [MessageView("This run has no tomograms to show yet.", "IsoNet2")]
        index, name = selected
        tkRoot = self.getTkRoot()

        def views(folder):
            # one folder per tomogram: the only <stem>_<suffix>.png in it is this one's
            pngs = [p for p in folder.glob(f"*_{suffix}.png") if not p.name.startswith("preview_")]
            if not pngs:
                return [MessageView(f"No {what} for {name} (e.g. no even/odd halves).",
                                    "IsoNet2", tkParent=tkRoot)]
            return [ImageView(pngs[0], f"{name}: {what}", tkParent=tkRoot)]

        return figureViews(self.protocol._getExtraPath(TOMOGRAMS_STAR),
                           self.protocol._getExtraPath(FIGURES_DIR, str(index)), views,
                           f"{name}: {what}", tkParent=tkRoot, tomoIdx=index)

    def _showOrthoslices(self, paramName=None):
        return self._tomogramFigure("orthoslices", "orthoslices")

    def _showFourier(self, paramName=None):
        return self._tomogramFigure("fourier", "Fourier XZ slices")

    def _showFsc(self, paramName=None):
        return self._tomogramFigure("fsc_even_odd", "even/odd FSC")

    def _showTomograms(self, paramName=None):
        output = getattr(self.protocol, "tomograms", None)
        if output is None:
            return [MessageView("This run has no output tomograms yet.", "IsoNet2")]
        viewer = TomoDataViewer(project=self.getProject(), protocol=self.protocol,
                                parent=self.formWindow)
        return viewer._visualize(output)


class IsoNet2PredictViewer(TomogramFiguresMixin, ProtocolViewer):
    """Input and corrected tomograms of an IsoNet2 prediction, side by side."""
    _label = "IsoNet2 prediction viewer"
    _targets = [ProtIsoNet2Predict]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label="Visualization")
        self._defineTomogramParams(form)

    def _getVisualizeDict(self):
        return self._tomogramHandlers()
