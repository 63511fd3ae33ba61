"""Figures of the IsoNet2 core shown in Scipion.

The figures themselves (orthoslices, Fourier slices, FSC, loss and preview plots) are made by
the core, :mod:`isonet2core.figures` through ``isonet2 report``, run in the IsoNet2 environment
like every other core step (the Scipion process keeps its own matplotlib backend and needs no
torch). This module runs that command and shows the PNGs it writes:

- :func:`coreFigures`: ``isonet2 report STAR --output_dir DIR [--tomo_idx I] [--model_dir M]
  --format md`` -> the folder of PNGs (``<name>_orthoslices.png``, ``<name>_fourier.png``,
  ``<name>_fsc_even_odd.png``, ``training_loss.png``, ``preview_<name>_*.png``);
- :class:`ImageView`: a Scipion ``View`` showing one PNG in a Tk window (its ``path`` is what
  headless callers and tests read).
"""
import os
import shlex
import subprocess
from pathlib import Path
from typing import Optional

from pyworkflow.viewer import View

from isonet2scipion import Plugin

_REPORT_TIMEOUT_S = 1800


class ImageView(View):
    """A PNG in its own window, scaled down to fit ``maxSize`` (width, height) pixels."""

    def __init__(self, path, title="", tkParent=None, maxSize=(1500, 950)):
        View.__init__(self)
        self.path = str(path)
        self.title = title or os.path.basename(self.path)
        self._tkParent = tkParent
        self._maxSize = maxSize

    def show(self):
        import tkinter as tk

        from PIL import Image, ImageTk

        window = tk.Toplevel(self._tkParent) if self._tkParent is not None else tk.Toplevel()
        window.title(self.title)
        image = Image.open(self.path)
        image.thumbnail(self._maxSize)
        photo = ImageTk.PhotoImage(image, master=window)
        label = tk.Label(window, image=photo)
        label.image = photo          # keep a reference: Tk does not
        label.pack()


def coreFigures(starPath, outputDir, tomoIdx: Optional[int] = None,
                modelDir=None) -> Path:
    """Run ``isonet2 report`` on ``starPath`` in the IsoNet2 environment; returns
    ``outputDir`` holding the PNGs. Figures made after the last change of the STAR file are
    reused (except with ``modelDir``: a running training adds epochs). Raises RuntimeError with
    the core's last error line."""
    outputDir = Path(outputDir).absolute()
    page = outputDir / "report.md"
    if modelDir is None and page.exists() and \
            page.stat().st_mtime > os.path.getmtime(str(starPath)):
        return outputDir
    program = Plugin.getCoreProgram()
    if program is None:
        raise RuntimeError(Plugin.checkEnvironment()[0])
    args = [os.path.abspath(str(starPath)), "--output_dir", str(outputDir), "--format", "md"]
    if tomoIdx is not None:
        args += ["--tomo_idx", str(tomoIdx)]
    if modelDir is not None:
        args += ["--model_dir", os.path.abspath(str(modelDir))]
    command = f"{program} report " + " ".join(shlex.quote(a) for a in args)
    outputDir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(command, shell=True, env=Plugin.getEnviron(), text=True,
                            cwd=str(outputDir),    # `-m` must not pick up a source tree
                            capture_output=True, executable="/bin/bash", timeout=_REPORT_TIMEOUT_S)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise RuntimeError(f"isonet2 report failed: {lines[-1] if lines else 'no message'}")
    return outputDir
