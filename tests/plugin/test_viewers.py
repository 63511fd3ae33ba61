"""Viewers on the finished protocols of the quick demo project, headless: each handler
returns its views; the PNGs they show were made by the core and have content."""
import numpy as np
from PIL import Image
from pyworkflow.viewer import MessageView

from isonet2scipion.viewers import IsoNet2ModelViewer, IsoNet2PredictViewer, IsoNet2TrainingViewer
from isonet2scipion.viewers.views import ImageView


def _assert_picture(view):
    assert isinstance(view, ImageView), view
    image = np.asarray(Image.open(view.path).convert("L"), dtype=np.float32)
    assert image.shape[0] > 200 and image.shape[1] > 200
    assert image.std() > 10, f"{view.path} looks blank"


def test_registered_targets():
    from pyworkflow.plugin import Domain

    from isonet2scipion.objects import IsoNet2Model
    from isonet2scipion.protocols import ProtIsoNet2Denoise, ProtIsoNet2Predict, ProtIsoNet2Refine
    viewers = Domain.getViewers()
    found = {v.__name__: v for v in viewers.values()} if isinstance(viewers, dict) else \
        {v.__name__: v for v in viewers}
    assert {"IsoNet2PredictViewer", "IsoNet2TrainingViewer", "IsoNet2ModelViewer"} <= set(found)
    assert ProtIsoNet2Predict in IsoNet2PredictViewer._targets
    assert {ProtIsoNet2Refine, ProtIsoNet2Denoise} <= set(IsoNet2TrainingViewer._targets)
    assert IsoNet2Model in IsoNet2ModelViewer._targets


def test_predict_viewer(demo_project):
    runs, project = demo_project
    predict = runs["ProtIsoNet2Predict"]
    viewer = IsoNet2PredictViewer(project=project, protocol=predict)
    viewer.setProtocol(predict)
    assert viewer._tomogramNames() == ["tomo_001"]
    handlers = viewer._getVisualizeDict()
    assert set(handlers) == {"displayOrthoslices", "displayFourier", "displayFsc",
                             "displayTomograms"}
    for name in ("displayOrthoslices", "displayFourier", "displayFsc"):
        views = handlers[name](name)
        assert len(views) == 1
        _assert_picture(views[0])
    opened = handlers["displayTomograms"]("displayTomograms")
    assert [type(v).__name__ for v in opened] == ["TomoObjectDialogView"]


def test_training_and_model_viewers(demo_project):
    runs, project = demo_project
    refine = runs["ProtIsoNet2Refine"]
    viewer = IsoNet2TrainingViewer(project=project, protocol=refine)
    viewer.setProtocol(refine)
    loss = viewer._getVisualizeDict()["displayLoss"]("displayLoss")
    _assert_picture(loss[0])
    previews = viewer._getVisualizeDict()["displayPreviews"]("displayPreviews")
    assert isinstance(previews[0], MessageView) and "no previews" in previews[0].getMessage()
    model = IsoNet2ModelViewer(project=project, protocol=refine)
    views = model._visualize(refine.model)
    _assert_picture(views[0])
