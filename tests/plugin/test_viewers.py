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


# ------------------------------------------- the GUI never waits for `isonet2 report` (issue 26, 7)
SLOW_REPORT = """#!/bin/sh
# stands in for `python -m isonet2core report STAR --output_dir DIR ...`: slow, then one figure
out=""; prev=""
for a in "$@"; do [ "$prev" = "--output_dir" ] && out="$a"; prev="$a"; done
echo "isonet2 report: making figures"
sleep {seconds}
{finish}
"""


def slow_core(tmp_path, seconds, finish):
    """A PYTHON_VAR interpreter whose report takes ``seconds`` and then runs ``finish``."""
    path = tmp_path / "python"
    path.write_text(SLOW_REPORT.format(seconds=seconds, finish=finish))
    path.chmod(0o755)
    return str(path)


def _picture(path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (300, 300), dtype=np.uint8)).save(path)
    return path


def test_viewer_in_the_gui_returns_before_the_report_ends(demo_project, monkeypatch, tmp_path):
    """With a Tk root (the GUI) the handler returns a progress view at once while the report
    runs in its own process; a second click follows the same report; when it ends the
    figure is what the progress window opens."""
    import time

    from isonet2scipion import Plugin
    from isonet2scipion.constants import PYTHON_VAR
    from isonet2scipion.viewers import viewer_tomograms
    from isonet2scipion.viewers.views import ReportProgressView

    runs, project = demo_project
    predict = runs["ProtIsoNet2Predict"]
    picture = _picture(tmp_path / "figure.png")
    finish = f'cp {picture} "$out/tomo_001_orthoslices.png"; echo "# report" > "$out/report.md"'
    monkeypatch.setitem(Plugin._vars, PYTHON_VAR, slow_core(tmp_path, 4, finish))
    monkeypatch.setattr(viewer_tomograms, "FIGURES_DIR", f"figures_gui_{time.time_ns()}")
    viewer = IsoNet2PredictViewer(project=project, protocol=predict)
    viewer.setProtocol(predict)
    viewer._tkRoot = object()          # what ProtocolViewer.visualize sets in the GUI
    handler = viewer._getVisualizeDict()["displayOrthoslices"]
    start = time.monotonic()
    (view,) = handler("displayOrthoslices")
    assert time.monotonic() - start < 2.5
    assert isinstance(view, ReportProgressView) and view.job.running()
    (again,) = handler("displayOrthoslices")
    assert again.job is view.job
    time.sleep(0.5)
    assert "isonet2 report running" in view.progressLine()
    assert "making figures" in view.progressLine()
    (figure,) = view.wait(60)
    assert time.monotonic() - start >= 3.5
    _assert_picture(figure)
    assert figure.path.endswith("tomo_001_orthoslices.png")
    (shown,) = handler("displayOrthoslices")       # made after the STAR: shown at once
    assert isinstance(shown, ImageView) and shown.path == figure.path


def test_report_errors_and_cancel(monkeypatch, tmp_path):
    """A failing report comes back as a message with the core's last line; Cancel ends it."""
    from isonet2scipion import Plugin
    from isonet2scipion.constants import PYTHON_VAR
    from isonet2scipion.viewers.views import figureViews

    star = tmp_path / "tomograms.star"
    star.write_text("data_\n")
    monkeypatch.setitem(Plugin._vars, PYTHON_VAR,
                        slow_core(tmp_path, 0, 'echo "ValueError: no such map" >&2; exit 1'))
    (view,) = figureViews(star, tmp_path / "out", lambda folder: [], "t", background=True)
    (message,) = view.wait(60)
    assert isinstance(message, MessageView)
    assert message.getMessage() == "isonet2 report failed: ValueError: no such map"
    (headless,) = figureViews(star, tmp_path / "out", lambda folder: [], "t")
    assert "ValueError: no such map" in headless.getMessage()
    monkeypatch.setitem(Plugin._vars, PYTHON_VAR, slow_core(tmp_path, 30, "true"))
    (view,) = figureViews(star, tmp_path / "out2", lambda folder: [], "t", background=True)
    view.job.cancel()
    view.job.process.wait(10)
    assert not view.job.running()
