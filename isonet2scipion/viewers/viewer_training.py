"""Viewers of IsoNet2 training: loss curves, previews, and the predicted tomograms.

- :class:`IsoNet2TrainingViewer` (refine and denoise runs): the loss per epoch (``loss.png``,
  plotted by the core after every epoch, so it follows a running training), the preview
  maps of ``with_preview`` runs (orthoslices and Fourier slices per saved epoch, by
  ``isonet2 report --model_dir``), and, when the run predicted, the figures of
  :mod:`.viewer_tomograms`.
- :class:`IsoNet2ModelViewer` (an ``IsoNet2Model``, e.g. an imported one): its loss curves.
"""
import os

from pyworkflow.protocol import params
from pyworkflow.viewer import DESKTOP_TKINTER, MessageView, ProtocolViewer, Viewer

from isonet2core.io.output_names import LOSS_PNG  # written by the core's trainer beside the model files
from isonet2scipion.constants import TOMOGRAMS_STAR
from isonet2scipion.objects import IsoNet2Model
from isonet2scipion.protocols import ProtIsoNet2Denoise, ProtIsoNet2Refine
from isonet2scipion.viewers.viewer_tomograms import TomogramFiguresMixin
from isonet2scipion.viewers.views import ImageView, figureViews

PREVIEWS_DIR = "figures_previews"


def lossView(modelDir, title, tkParent=None):
    """The loss plot of a training output folder, or a message saying why there is none."""
    png = os.path.join(str(modelDir), LOSS_PNG)
    if not os.path.exists(png):
        return MessageView(f"No loss curves in {modelDir} yet (the core writes {LOSS_PNG} "
                           "after each epoch).", "IsoNet2")
    return ImageView(png, title, tkParent=tkParent)


class IsoNet2TrainingViewer(TomogramFiguresMixin, ProtocolViewer):
    """Loss curves, training previews and predicted tomograms of refine or denoise."""
    _label = "IsoNet2 training viewer"
    _targets = [ProtIsoNet2Refine, ProtIsoNet2Denoise]
    _environments = [DESKTOP_TKINTER]

    def _defineParams(self, form):
        form.addSection(label="Training")
        form.addParam("displayLoss", params.LabelParam, label="Loss curves",
                      help="Loss per epoch (log scale): the total, the Noise2Noise term in the "
                           "measured region and the missing-wedge term (unweighted).")
        form.addParam("displayPreviews", params.LabelParam, label="Training previews",
                      help="Orthoslices and Fourier slices of the first tomogram as predicted "
                           "at the saved epochs (runs with 'Write previews?' = Yes).")
        if self.protocol.doPredict.get():
            form.addSection(label="Predicted tomograms")
            self._defineTomogramParams(form)

    def _getVisualizeDict(self):
        handlers = {"displayLoss": self._showLoss, "displayPreviews": self._showPreviews}
        handlers.update(self._tomogramHandlers())
        return handlers

    def _showLoss(self, paramName=None):
        return [lossView(self.protocol._modelDir(), f"{self.protocol.getObjLabel()}: loss",
                         tkParent=self.getTkRoot())]

    def _showPreviews(self, paramName=None):
        modelDir = self.protocol._modelDir()
        if not os.path.isdir(os.path.join(modelDir, "preview")):
            return [MessageView("This run wrote no previews (set 'Write previews?' to Yes "
                                "in the expert options).", "IsoNet2")]
        tkRoot = self.getTkRoot()

        def views(folder):
            pngs = sorted(folder.glob("preview_*.png"))
            if not pngs:
                return [MessageView("No preview maps yet.", "IsoNet2", tkParent=tkRoot)]
            return [ImageView(p, p.stem, tkParent=tkRoot) for p in pngs]

        return figureViews(self.protocol._getExtraPath(TOMOGRAMS_STAR),
                           self.protocol._getExtraPath(PREVIEWS_DIR), views,
                           "training previews", tkParent=tkRoot, tomoIdx=1, modelDir=modelDir)


class IsoNet2ModelViewer(Viewer):
    """The loss curves of a trained IsoNet2 network."""
    _name = "IsoNet2 model viewer"
    _targets = [IsoNet2Model]
    _environments = [DESKTOP_TKINTER]

    def _visualize(self, obj, **kwargs):
        return [lossView(os.path.dirname(obj.getPath() or ""), f"{obj}: loss",
                         tkParent=self.getTkRoot())]
