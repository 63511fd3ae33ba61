"""The plugin's windows on a real (virtual) X display: every IsoNet2 protocol form, the
prediction viewer's form and the project window of the quick demo project are built and
captured into ./screenshots/ (git-ignored) for people to look at.

Needs Xvfb (Debian/Ubuntu: ``apt-get install -y xvfb x11-utils``); skipped without it.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from isonet2scipion.demo import scipion_environment

SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
# one PNG per form tab (forms of one tab: one PNG), the viewer's form and the project window
EXPECTED = sorted(
    [f"form_ProtIsoNet2Deconv_{tab}" for tab in ("Input", "Deconvolution")]
    + [f"form_ProtIsoNet2MakeMask_{tab}" for tab in ("Input", "Mask")]
    + [f"form_{name}_{tab}" for name in ("ProtIsoNet2Denoise", "ProtIsoNet2Refine",
                                          "ProtIsoNet2Refine_advanced")
       for tab in ("Input", "Training", "Prediction")]
    + [f"form_ProtIsoNet2Predict_{tab}" for tab in ("Input", "Prediction")]
    + ["form_ProtIsoNet2ImportModel", "viewer_IsoNet2PredictViewer", "project_window"]
    # a figure made in the background: the progress window, then the figure it opens
    + ["viewer_report_progress", "viewer_report_figure"])

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None,
                                reason="Xvfb is not installed (apt-get install -y xvfb x11-utils)")


@pytest.fixture(scope="module")
def display():
    """A private Xvfb server; its display name (Xvfb picks a free number)."""
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0",
                               "1600x1200x24", "-nolisten", "tcp"],
                              pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        number = pipe.readline().strip()
    if not number:
        server.kill()
        pytest.fail("Xvfb did not start")
    yield f":{number}"
    server.kill()
    server.wait()


def test_windows_open_and_are_captured(quick_demo, display):
    result, folder = quick_demo
    assert result.returncode == 0, result.stderr
    env = dict(os.environ, **scipion_environment(folder), DISPLAY=display)
    project = folder / "ScipionUserData" / "projects" / "isonet2_demo"
    for old in [*SCREENSHOTS.glob("form_*.png"), *SCREENSHOTS.glob("viewer_*.png"),
                SCREENSHOTS / "project_window.png"]:
        old.unlink(missing_ok=True)
    run = subprocess.run([sys.executable, str(Path(__file__).with_name("gui_screens.py")),
                          str(project), str(SCREENSHOTS)], env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    captured = sorted(Path(line.split()[-1]).stem for line in run.stdout.splitlines()
                      if line.startswith("captured "))
    assert captured == EXPECTED
    for name in EXPECTED:
        image = np.asarray(Image.open(SCREENSHOTS / f"{name}.png").convert("L"), np.float32)
        if name != "viewer_report_progress":     # one line and a button
            assert image.shape[0] >= 300 and image.shape[1] >= 500, (name, image.shape)
        assert image.std() > (5 if name == "viewer_report_progress" else 20), \
            f"{name}.png looks blank"
