"""Figures of the IsoNet2 core shown in Scipion.

The figures themselves (orthoslices, Fourier slices, FSC, loss and preview plots) are made by
the core, :mod:`isonet2core.report.figures` through ``isonet2 report``, run in the IsoNet2 environment
like every other core step (the Scipion process keeps its own matplotlib backend and needs no
torch). This module runs that command and shows the PNGs it writes. The GUI never waits on it: the
command runs in its own process, polled from Tk's event loop behind a progress line.

- :func:`startFigures`: starts ``isonet2 report STAR --output_dir DIR [--tomo_idx I]
  [--model_dir M] --format md`` (a :class:`ReportJob`) -> the folder of PNGs
  (``<name>_orthoslices.png``, ``<name>_fourier.png``, ``<name>_fsc_even_odd.png``,
  ``training_loss.png``, ``preview_<name>_*.png``); :func:`coreFigures` waits for it;
- :func:`figureViews`: what a viewer's handler returns: in the GUI a
  :class:`ReportProgressView` at once (its window shows the progress line, then the figures),
  headless the figures' views;
- :class:`ImageView`: a Scipion ``View`` showing one PNG in a Tk window (its ``path`` is what
  headless callers and tests read).
"""
import os
import shlex
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Optional

from pyworkflow.viewer import MessageView, View

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


class ReportJob:
    """``isonet2 report`` running in its own process (never waited on in the GUI thread): its
    output goes to ``<outputDir>/report.log``, whose last line is the progress line."""

    def __init__(self, command: str, outputDir: Path):
        self.outputDir = outputDir
        self.log = outputDir / "report.log"
        self.started = time.monotonic()
        with open(self.log, "w") as log:
            # a neutral working directory: `-m` must not pick up a source tree; a session of
            # its own, so that Cancel ends the command and its children
            self.process = subprocess.Popen(command, shell=True, env=Plugin.getEnviron(),
                                            cwd=str(outputDir), stdout=log,
                                            stderr=subprocess.STDOUT, executable="/bin/bash",
                                            start_new_session=True)

    def running(self) -> bool:
        return self.process.poll() is None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def lastLine(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def wait(self, timeout=_REPORT_TIMEOUT_S) -> Path:
        """Wait for the end (headless callers); the folder of PNGs, or RuntimeError with the
        core's last line."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise RuntimeError(f"isonet2 report did not finish within {timeout} s") from None
        return self.result()

    def result(self) -> Path:
        if self.process.returncode != 0:
            raise RuntimeError(f"isonet2 report failed: {self.lastLine() or 'no message'}")
        return self.outputDir

    def cancel(self):
        if self.running():
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except OSError:
                pass


_RUNNING = {}   # output folder -> ReportJob: a second click follows the running report


def startFigures(starPath, outputDir, tomoIdx: Optional[int] = None,
                 modelDir=None) -> Optional[ReportJob]:
    """Start ``isonet2 report`` on ``starPath`` in the IsoNet2 environment, writing its PNGs to
    ``outputDir``; returns the running job, or None when the figures made after the last change
    of the STAR file can be reused (never with ``modelDir``: a running training adds epochs).
    Raises RuntimeError when there is no IsoNet2 environment."""
    outputDir = Path(outputDir).absolute()
    job = _RUNNING.get(str(outputDir))
    if job is not None and job.running():
        return job
    page = outputDir / "report.md"
    if modelDir is None and page.exists() and \
            page.stat().st_mtime > os.path.getmtime(str(starPath)):
        return None
    program = Plugin.getCoreProgram()
    if program is None:
        raise RuntimeError(Plugin.checkEnvironment()[0])
    args = [os.path.abspath(str(starPath)), "--output_dir", str(outputDir), "--format", "md"]
    if tomoIdx is not None:
        args += ["--tomo_idx", str(tomoIdx)]
    if modelDir is not None:
        args += ["--model_dir", os.path.abspath(str(modelDir))]
    outputDir.mkdir(parents=True, exist_ok=True)
    job = ReportJob(f"{program} report " + " ".join(shlex.quote(a) for a in args), outputDir)
    _RUNNING[str(outputDir)] = job
    return job


def coreFigures(starPath, outputDir, tomoIdx: Optional[int] = None,
                modelDir=None) -> Path:
    """:func:`startFigures` and wait for the end: ``outputDir`` holding the PNGs. Raises
    RuntimeError with the core's last error line."""
    job = startFigures(starPath, outputDir, tomoIdx=tomoIdx, modelDir=modelDir)
    return Path(outputDir).absolute() if job is None else job.wait()


class ReportProgressView(View):
    """A small window with a progress line (elapsed time and the report's last output line)
    while ``isonet2 report`` runs; it polls the process from Tk's event loop, so the GUI keeps
    responding. When the report ends the window closes and the views of ``makeViews(folder)``
    are shown (or the error). Cancel ends the report."""

    POLL_MS = 500

    def __init__(self, job: ReportJob, makeViews: Callable, title: str, tkParent=None):
        View.__init__(self)
        self.job = job
        self.makeViews = makeViews
        self.title = title
        self._tkParent = tkParent
        self.window = None           # the progress window, once shown

    def progressLine(self) -> str:
        last = self.job.lastLine()
        return (f"{self.title}: isonet2 report running, {self.job.elapsed():.0f} s"
                + (f" | {last[-100:]}" if last else ""))

    def results(self) -> list:
        """The views to show once the report ended."""
        try:
            return list(self.makeViews(self.job.result()))
        except (RuntimeError, OSError) as exc:
            return [MessageView(str(exc), "IsoNet2 figures", tkParent=self._tkParent)]

    def wait(self, timeout=_REPORT_TIMEOUT_S) -> list:
        """Headless: wait for the report and return :meth:`results`."""
        try:
            self.job.wait(timeout)
        except RuntimeError as exc:
            return [MessageView(str(exc), "IsoNet2 figures", tkParent=self._tkParent)]
        return self.results()

    def show(self):
        import tkinter as tk

        window = tk.Toplevel(self._tkParent) if self._tkParent is not None else tk.Toplevel()
        window.title(f"IsoNet2: {self.title}")
        self.window = window
        label = tk.Label(window, text=self.progressLine(), anchor="w", justify="left",
                         width=90, padx=10, pady=10)
        label.pack(fill="x")

        def cancel():
            self.job.cancel()
            window.destroy()

        tk.Button(window, text="Cancel", command=cancel).pack(pady=(0, 10))
        window.protocol("WM_DELETE_WINDOW", cancel)

        def poll():
            if not window.winfo_exists():
                return
            if self.job.running():
                label.configure(text=self.progressLine())
                window.after(self.POLL_MS, poll)
                return
            window.destroy()
            for view in self.results():
                view.show()

        window.after(self.POLL_MS, poll)


def figureViews(starPath, outputDir, makeViews: Callable, title: str, tkParent=None,
                background: Optional[bool] = None, **reportArgs) -> list:
    """The views of a report's figures: ``makeViews(folder)`` once ``isonet2 report`` has
    written them. In the GUI (``tkParent`` given, or ``background``) the report runs in the
    background and a :class:`ReportProgressView` is returned at once; headless (tests, scripts)
    the call waits and returns the views themselves. Errors come back as a MessageView."""
    if background is None:
        background = tkParent is not None
    try:
        job = startFigures(starPath, outputDir, **reportArgs)
    except (RuntimeError, OSError) as exc:
        return [MessageView(str(exc), "IsoNet2 figures", tkParent=tkParent)]
    if job is None:
        return list(makeViews(Path(outputDir).absolute()))
    view = ReportProgressView(job, makeViews, title, tkParent=tkParent)
    return [view] if background else view.wait()
