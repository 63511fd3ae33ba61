"""Scipion plugin for IsoNet2 (missing-wedge correction, Noise2Noise denoising and CTF
correction of cryo-ET tomograms).

The plugin runs inside Scipion; the work is done by ``isonet2core`` (PyTorch) in a separate,
managed Python environment, because Scipion pins numpy/matplotlib/pillow versions that a deep
learning stack does not share. Every core call goes through :meth:`Plugin.runCore`, which runs
``python -m isonet2core <step> ...`` in that environment.

Which interpreter runs the core (first match wins):

1. ``ISONET2_PYTHON`` when it names an existing file: any Python that has ``isonet2core``
   installed (``pip install "scipion-em-isonet2[core]"``). Its default is the venv that
   ``scipion installb isonet2-<version>`` creates when conda is absent:
   ``<ISONET2_HOME>/venv/bin/python``.
2. Otherwise the conda environment: ``<CONDA_ACTIVATION_CMD> <ISONET2_ENV_ACTIVATION> && python``
   (``ISONET2_ENV_ACTIVATION`` defaults to ``conda activate isonet2-<version>``).
"""
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pwem
from pyworkflow import TOMO
from pyworkflow.utils import Environ

from isonet2scipion.constants import (DEFAULT_ACTIVATION_CMD, DEFAULT_TORCH_SPEC, INSTALLED_FLAG,
                                      ISONET2, ISONET2_ENV_ACTIVATION, ISONET2_ENV_NAME,
                                      ISONET2_HOME, ISONET2_PYTHON, ISONET2_TORCH,
                                      ISONET2_VERSION, PIP_DISTRIBUTION, VENV_DIR)

__version__ = ISONET2_VERSION
_references = ["Liu2025IsoNet2"]

logger = logging.getLogger(__name__)

_SOURCE_DIR = Path(__file__).resolve().parent.parent
_CHECK_TIMEOUT_S = 300
_FAILED_CHECK_TTL_S = 30.0


class Plugin(pwem.Plugin):
    _homeVar = ISONET2_HOME
    _url = "https://github.com/scipion-em/scipion-em-isonet2"
    _processingField = [TOMO]
    # program string -> (ok, message, time of the check); successes are kept for the session
    _envChecks = {}

    @classmethod
    def _defineVariables(cls):
        cls._defineEmVar(ISONET2_HOME, ISONET2_ENV_NAME,
                         description="Folder of the managed IsoNet2 environment")
        cls._defineVar(ISONET2_ENV_ACTIVATION, DEFAULT_ACTIVATION_CMD,
                       description="Command that activates the IsoNet2 conda environment")
        cls._defineVar(ISONET2_PYTHON,
                       os.path.join(cls.getVar(ISONET2_HOME), VENV_DIR, "bin", "python"),
                       description="Python interpreter with isonet2core installed "
                                   "(used when the file exists; else the conda environment)")
        cls._defineVar(ISONET2_TORCH, DEFAULT_TORCH_SPEC,
                       description="PyTorch requirement installed into the managed environment")

    # ------------------------------------------------------------ environment
    @classmethod
    def _condaAvailable(cls) -> bool:
        return bool(cls.getCondaActivationCmd()) or shutil.which("conda") is not None

    @classmethod
    def getCoreProgram(cls):
        """The shell words that start the core (``... -m isonet2core``), or None when there is
        neither an existing ISONET2_PYTHON nor conda."""
        python = cls.getVar(ISONET2_PYTHON)
        if python and os.path.isfile(python):
            return f"{shlex.quote(python)} -m isonet2core"
        if os.environ.get(ISONET2_PYTHON):  # set explicitly, but missing: do not fall back
            return None
        if cls._condaAvailable():
            return (f"{cls.getCondaActivationCmd()} {cls.getVar(ISONET2_ENV_ACTIVATION)} "
                    f"&& python -m isonet2core")
        return None

    @classmethod
    def getEnviron(cls, gpus=None):
        """Environment of a core process: without Scipion's PYTHONPATH/PYTHONHOME (the core has
        its own interpreter and packages) and, when ``gpus`` is a list, with
        CUDA_VISIBLE_DEVICES set to those GPU ids (an empty list hides every GPU)."""
        environ = Environ(os.environ)
        for key in ("PYTHONPATH", "PYTHONHOME"):
            environ.pop(key, None)
        if gpus is not None:
            environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in gpus)
        return environ

    @classmethod
    def installHint(cls) -> str:
        return (f"Install the IsoNet2 environment with `scipion3 installb {ISONET2_ENV_NAME}` "
                f"(or `python -m scipion installb {ISONET2_ENV_NAME}`), or set {ISONET2_PYTHON} "
                f"to a Python interpreter where `pip install \"{PIP_DISTRIBUTION}[core]\"` was run.")

    @classmethod
    def checkEnvironment(cls) -> list:
        """Error messages (empty when the core answers ``--version``). Successful checks are
        cached for the session; failed ones are repeated after a few seconds."""
        program = cls.getCoreProgram()
        if program is None:
            python = cls.getVar(ISONET2_PYTHON)
            return [f"The IsoNet2 environment was not found: {ISONET2_PYTHON}={python} does not "
                    f"exist and conda is not available. {cls.installHint()}"]
        cached = cls._envChecks.get(program)
        if cached and (cached[0] or time.time() - cached[2] < _FAILED_CHECK_TTL_S):
            return [] if cached[0] else [cached[1]]
        try:
            # a neutral working directory: `-m` must not pick up a source tree in the cwd
            result = subprocess.run(f"{program} --version", shell=True, env=cls.getEnviron(),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, timeout=_CHECK_TIMEOUT_S, executable="/bin/bash",
                                    cwd=tempfile.gettempdir())
            ok = result.returncode == 0 and "isonet2core" in result.stdout
            detail = result.stdout.strip().splitlines()[-1:] if result.stdout.strip() else []
        except subprocess.TimeoutExpired:
            ok, detail = False, [f"no answer within {_CHECK_TIMEOUT_S} s"]
        message = ("" if ok else
                   f"The IsoNet2 environment is broken: `{program} --version` failed"
                   f"{(': ' + detail[0]) if detail else ''}. {cls.installHint()}")
        cls._envChecks[program] = (ok, message, time.time())
        return [] if ok else [message]

    @classmethod
    def validateInstallation(cls):
        """Called by Protocol.validate() before a run: a missing or broken environment stops
        the protocol with :meth:`installHint`."""
        return cls.checkEnvironment()

    @classmethod
    def runCore(cls, protocol, step, args, gpus=None, cwd=None):
        """Run ``isonet2 <step> <args>`` for ``protocol`` in the managed environment.

        :param step: a core subcommand (``deconv``, ``make-mask``, ``refine``, ``denoise``,
            ``predict``...).
        :param args: list of arguments (each is quoted for the shell by pyworkflow).
        :param gpus: GPU ids for CUDA_VISIBLE_DEVICES (None leaves it untouched, [] hides all).
        """
        program = cls.getCoreProgram()
        if program is None:
            raise RuntimeError(cls.checkEnvironment()[0])
        protocol.runJob(program, [step] + [str(a) for a in args], env=cls.getEnviron(gpus),
                        cwd=cwd, numberOfMpi=1, numberOfThreads=1)

    # ------------------------------------------------------------ installation
    @classmethod
    def coreRequirement(cls) -> str:
        """What pip installs for the core: this source tree when the plugin runs from a
        checkout, else the released distribution of the same version."""
        if (_SOURCE_DIR / "setup.py").is_file() and (_SOURCE_DIR / "isonet2core").is_dir():
            return f"{_SOURCE_DIR}[core]"
        return f"{PIP_DISTRIBUTION}[core]=={ISONET2_VERSION}"

    @classmethod
    def installCommand(cls, useConda: bool) -> str:
        """The shell command that builds the managed environment in the package folder."""
        torch = shlex.quote(cls.getVar(ISONET2_TORCH, DEFAULT_TORCH_SPEC))
        core = shlex.quote(cls.coreRequirement())
        if useConda:
            return (f"{cls.getCondaActivationCmd()} conda create -y -n {ISONET2_ENV_NAME} "
                    f"python=3.11 && conda activate {ISONET2_ENV_NAME} && "
                    f"python -m pip install {torch} && python -m pip install {core} && "
                    f"python -m isonet2core --version && touch {INSTALLED_FLAG}")
        python = f"{VENV_DIR}/bin/python"
        return (f"{shlex.quote(sys.executable)} -m venv {VENV_DIR} && "
                f"{python} -m pip install {torch} && {python} -m pip install {core} && "
                f"{python} -m isonet2core --version && touch {INSTALLED_FLAG}")

    @classmethod
    def defineBinaries(cls, env):
        """``scipion installb isonet2-<version>``: a conda env ``isonet2-<version>`` (Python 3.11,
        PyTorch, isonet2core) where conda exists, else a venv in software/em/isonet2-<version>/venv
        made with ``python -m venv`` and pip."""
        useConda = cls._condaAvailable()
        envPath = os.environ.get("PATH", "")
        env.addPackage(ISONET2, version=ISONET2_VERSION, tar="void.tgz",
                       commands=[(cls.installCommand(useConda), INSTALLED_FLAG)],
                       neededProgs=[], vars={"PATH": envPath} if envPath else None,
                       default=True)
