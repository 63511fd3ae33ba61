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

    capture(ProjectWindow(project_path), out / "project_window.png")
    return 0


if __name__ == "__main__":
    code = main(sys.argv[1], sys.argv[2])
    sys.stdout.flush()
    os._exit(code)           # the project window leaves timer threads behind
