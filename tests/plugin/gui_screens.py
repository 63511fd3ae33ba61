"""Open the plugin's windows on an X display and screenshot them (run by test_gui.py).

``python gui_screens.py PROJECT_PATH OUT_DIR`` with DISPLAY set and the Scipion variables of
the project's installation: opens, one after the other, the form of every IsoNet2 protocol
(the finished run of the project where there is one, else a new protocol; refine also at the
advanced level), the prediction viewer's form, and the project window, and saves each window
as ``OUT_DIR/<name>.png``. Exit code 0 when every window was built and captured; any error
ends the script with a traceback (non-zero exit).
"""
import os
import sys
from pathlib import Path

SETTLE_MS = 1500      # time for a window to lay itself out before the capture


def grab_widget(widget, path: Path):
    """Save the screen area of a mapped Tk widget as ``path``."""
    from PIL import ImageGrab

    widget.update()
    x, y = widget.winfo_rootx(), widget.winfo_rooty()
    w, h = widget.winfo_width(), widget.winfo_height()
    if w < 100 or h < 40:
        raise RuntimeError(f"{path.name}: the window is only {w} x {h} pixels")
    ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=os.environ["DISPLAY"]).save(path)
    print(f"captured {path}", flush=True)


SLOW_REPORT = """#!/bin/sh
# stands in for `python -m isonet2core report ... --output_dir DIR`: slow, then one figure
out=""; prev=""
for a in "$@"; do [ "$prev" = "--output_dir" ] && out="$a"; prev="$a"; done
echo "isonet2 report: computing the Fourier slices"
sleep 4
cp {figure} "$out/tomo_001_orthoslices.png"; echo "# report" > "$out/report.md"
"""


def report_in_background(project, run, out: Path):
    """The prediction viewer in the GUI: its handler returns at once and the progress window
    keeps polling a slow (stand-in) report from Tk's event loop - the window is captured while
    the report runs -, then closes and opens the figure (captured too)."""
    import tempfile

    from isonet2scipion import Plugin
    from isonet2scipion.constants import PYTHON_VAR

    fake = Path(tempfile.mkdtemp()) / "python"
    fake.write_text(SLOW_REPORT.format(figure=out / "form_ProtIsoNet2ImportModel.png"))
    fake.chmod(0o755)
    python, Plugin._vars[PYTHON_VAR] = Plugin._vars[PYTHON_VAR], str(fake)
    try:
        _progress_then_figure(project, run, out)
    finally:
        Plugin._vars[PYTHON_VAR] = python


def _progress_then_figure(project, run, out: Path):
    import time
    import tkinter as tk

    from isonet2scipion.viewers import IsoNet2PredictViewer, viewer_tomograms
    from isonet2scipion.viewers.views import ReportProgressView

    viewer_tomograms.FIGURES_DIR = f"figures_gui_{time.time_ns()}"
    root = tk._default_root or tk.Tk()
    viewer = IsoNet2PredictViewer(project=project, protocol=run)
    viewer.setProtocol(run)
    viewer._tkRoot = root                      # as ProtocolViewer.visualize sets it
    start = time.monotonic()
    (view,) = viewer._getVisualizeDict()["displayOrthoslices"]("displayOrthoslices")
    if not isinstance(view, ReportProgressView) or time.monotonic() - start > 2.5:
        raise RuntimeError(f"the handler waited for the report: {view}")
    view.show()
    deadline = time.monotonic() + 60
    while time.monotonic() - start < 2.0:
        root.update()
        time.sleep(0.05)
    if "isonet2 report running" not in view.window.children["!label"].cget("text"):
        raise RuntimeError("no progress line")
    grab_widget(view.window, out / "viewer_report_progress.png")
    figure = None
    while figure is None and time.monotonic() < deadline:
        root.update()
        time.sleep(0.05)
        figure = next((w for w in root.winfo_children() if isinstance(w, tk.Toplevel)
                       and w.title() == "tomo_001: orthoslices"), None)
    if figure is None or view.window.winfo_exists():
        raise RuntimeError("the progress window did not open the figure")
    time.sleep(0.3)
    grab_widget(figure, out / "viewer_report_figure.png")
    figure.destroy()


def capture(window, png: Path) -> list:
    """Show ``window`` (a pyworkflow gui Window), capture its area of the screen once it has
    settled - each tab of a protocol form separately (``<png stem>_<tab>.png``) - then close
    it. Returns the PNG files written."""
    from PIL import ImageGrab

    root = window.root
    written = []

    def grab(path: Path):
        root.update()
        x, y = root.winfo_rootx(), root.winfo_rooty()
        w, h = root.winfo_width(), root.winfo_height()
        if w < 100 or h < 100:
            raise RuntimeError(f"{path.name}: the window is only {w} x {h} pixels")
        ImageGrab.grab(bbox=(x, y, x + w, y + h), xdisplay=os.environ["DISPLAY"]).save(path)
        written.append(path)

    def shoot():
        try:
            sections = getattr(window, "_sections", [])
            if len(sections) > 1:
                for section in sections:
                    notebook = section.master
                    notebook.select(section)
                    label = notebook.tab(section, "text").replace(" ", "_").replace("/", "_")
                    grab(png.with_name(f"{png.stem}_{label}.png"))
            else:
                grab(png)
        finally:
            root.quit()          # leaves mainloop (the hidden Tk root of pyworkflow stays)
            root.destroy()

    root.after(SETTLE_MS, shoot)
    window.show()
    if not written:
        raise RuntimeError(f"{png.name} was not captured")
    for path in written:
        print(f"captured {path}", flush=True)
    return written


def main(project_path: str, out_dir: str) -> int:
    import pyworkflow as pw
    import pyworkflow.gui.project  # noqa: F401  (before pyworkflow.gui.form: circular imports)
    from pyworkflow.gui.form import FormWindow
    from pyworkflow.gui.project import ProjectWindow
    from pyworkflow.project import Project

    from isonet2scipion.protocols import (
        ProtIsoNet2Deconv,
        ProtIsoNet2Denoise,
        ProtIsoNet2ImportModel,
        ProtIsoNet2MakeMask,
        ProtIsoNet2Predict,
        ProtIsoNet2Refine,
    )
    from isonet2scipion.viewers import IsoNet2PredictViewer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(project_path)
    project = Project(pw.Config.getDomain(), project_path)
    project.load()
    runs = {run.getClassName(): run for run in project.getRuns()}

    for cls in (ProtIsoNet2Deconv, ProtIsoNet2MakeMask, ProtIsoNet2Denoise, ProtIsoNet2Refine,
                ProtIsoNet2Predict, ProtIsoNet2ImportModel):
        levels = ("normal", "advanced") if cls is ProtIsoNet2Refine else ("normal",)
        for level in levels:
            prot = runs.get(cls.__name__) or project.newProtocol(cls)
            prot.expertLevel.set(1 if level == "advanced" else 0)
            suffix = "" if level == "normal" else "_advanced"
            capture(FormWindow(f"Protocol: {prot.getClassLabel()}", prot, lambda *a: None),
                    out / f"form_{cls.__name__}{suffix}.png")

    viewer = IsoNet2PredictViewer(project=project, protocol=runs["ProtIsoNet2Predict"])
    viewer.setProtocol(runs["ProtIsoNet2Predict"])
    capture(FormWindow("Protocol Viewer: IsoNet2PredictViewer", viewer, lambda *a: None,
                       visualizeDict={k: (lambda *a: None) for k in viewer._getVisualizeDict()},
                       visualizeMode=True),
            out / "viewer_IsoNet2PredictViewer.png")

    report_in_background(project, runs["ProtIsoNet2Predict"], out)
    capture(ProjectWindow(project_path), out / "project_window.png")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    os._exit(code)           # the project window leaves timer threads behind
