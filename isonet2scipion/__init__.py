"""Scipion plugin for IsoNet2 (missing-wedge correction, Noise2Noise denoising and CTF
correction of cryo-ET tomograms).

The plugin runs inside Scipion; the work is done by ``isonet2core`` (PyTorch) in a separate,
managed Python environment, because Scipion pins numpy/matplotlib/pillow versions that a deep
learning stack does not share. Every core call goes through :meth:`Plugin.runCore`, which runs
``python -m isonet2core <step> ...`` in that environment.

Which interpreter runs the core (first match wins):

1. ``ISONET2SCIPION_PYTHON`` when it names an existing file: any Python that has
   ``isonet2core`` installed (``pip install "scipion-em-isonet2scipion[core]"``). Its default is
   the venv that ``scipion installb isonet2scipion-<version>`` creates when conda is absent:
   ``<ISONET2SCIPION_HOME>/venv/bin/python``.
2. Otherwise the conda environment: ``<CONDA_ACTIVATION_CMD> <ISONET2SCIPION_ENV_ACTIVATION> &&
   python`` (the activation defaults to ``conda activate isonet2scipion-<version>``).

The core must be the plugin's own version: a managed environment left by another version is
reported with both versions and the command that rebuilds it. The variable names are our own
(``ISONET2SCIPION_*``), so that the Scipion team's plugin for the official IsoNet2 (package
``isonet2``, variables ``ISONET2_*``) can be installed beside this one.
"""
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import List, Optional

import pwem
from pyworkflow import TOMO
from pyworkflow.utils import Environ

from isonet2scipion import core_wheel, env_stamp
from isonet2scipion.constants import (
    BINARY_NAME,
    DEFAULT_ACTIVATION_CMD,
    DEFAULT_TORCH_SPEC,
    ENV_ACTIVATION_VAR,
    ENV_NAME,
    HOME_VAR,
    INSTALLED_FLAG,
    ISONET2_VERSION,
    PIP_DISTRIBUTION,
    PYTHON_VAR,
    TORCH_VAR,
    VENV_DIR,
)

__version__ = ISONET2_VERSION
_logo = "isonet2_logo.png"      # next to this file; the protocol forms show it
_references = ["Liu2025IsoNet2"]   # bibtex.py

logger = logging.getLogger(__name__)

_CHECK_TIMEOUT_S = 120
_FAILED_CHECK_TTL_S = 30.0


class Plugin(pwem.Plugin):
    _homeVar = HOME_VAR
    _url = "https://pypi.org/project/scipion-em-isonet2scipion"
    _processingField = [TOMO]
    # program string -> (ok, message, time of the check); successes are kept for the session
    _envChecks = {}

    @classmethod
    def _defineVariables(cls):
        cls._defineEmVar(HOME_VAR, ENV_NAME,
                         description="Folder of the managed IsoNet2 environment")
        cls._defineVar(ENV_ACTIVATION_VAR, DEFAULT_ACTIVATION_CMD,
                       description="Command that activates the IsoNet2 conda environment")
        # a path: `scipion config` writes it relative (software/em/...), and Scipion resolves
        # such values against SCIPION_HOME, as pwem does for its *_HOME variables
        default = os.path.join(cls.getVar(HOME_VAR), VENV_DIR, "bin", "python")
        cls._addVar(PYTHON_VAR, scipionPath(os.environ.get(PYTHON_VAR, default)), default,
                    description="Python interpreter with isonet2core installed "
                                "(used when the file exists; else the conda environment)")
        cls._defineVar(TORCH_VAR, DEFAULT_TORCH_SPEC,
                       description="pip arguments that install PyTorch into the managed "
                                   "environment, e.g. 'torch==2.13.0 --index-url "
                                   "https://download.pytorch.org/whl/cu126'")

    # ------------------------------------------------------------ environment
    @classmethod
    def _condaAvailable(cls) -> bool:
        return bool(cls.getCondaActivationCmd()) or shutil.which("conda") is not None

    @classmethod
    def getCoreProgram(cls):
        """The shell words that start the core (``... -m isonet2core``), or None when there is
        neither an existing PYTHON_VAR nor conda."""
        python = cls.getVar(PYTHON_VAR)
        if python and os.path.isfile(python):
            return f"{shlex.quote(python)} -m isonet2core"
        if os.environ.get(PYTHON_VAR):  # set explicitly, but missing: do not fall back
            return None
        if cls._condaAvailable():
            return (f"{cls.getCondaActivationCmd()} {cls.getVar(ENV_ACTIVATION_VAR)} "
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
        return (f"Install the IsoNet2 environment with `scipion3 installb {ENV_NAME}` "
                f"(or `python -m scipion installb {ENV_NAME}`), or set {PYTHON_VAR} "
                f"to a Python interpreter where `pip install \"{PIP_DISTRIBUTION}[core]\"` was run.")

    @classmethod
    def _corePython(cls) -> Optional[str]:
        """The interpreter that runs the core when it is a file (None: the conda command)."""
        python = cls.getVar(PYTHON_VAR)
        return python if python and os.path.isfile(python) else None

    @classmethod
    def managedFlag(cls) -> str:
        """The install target of ``scipion installb``: it holds the core's version line."""
        return os.path.join(cls.getVar(HOME_VAR), INSTALLED_FLAG)

    @classmethod
    def _isManaged(cls) -> bool:
        """Does the core run in the environment that ``installb`` built (venv or conda)?"""
        python = cls._corePython()
        if python is not None:
            managed = os.path.join(cls.getVar(HOME_VAR), VENV_DIR, "bin", "python")
            return os.path.abspath(python) == os.path.abspath(managed)
        return cls.getVar(ENV_ACTIVATION_VAR) == DEFAULT_ACTIVATION_CMD

    @classmethod
    def stampedVersion(cls, program: str) -> Optional[str]:
        """The core version that a fresh stamp vouches for (no subprocess; see
        :mod:`isonet2scipion.env_stamp`), or None."""
        if cls._isManaged():
            version = env_stamp.managed_flag_version(cls.managedFlag())
            if version is not None:
                return version
        import pyworkflow as pw
        return env_stamp.read_stamp(env_stamp.stamp_path(pw.Config.SCIPION_USER_DATA, program),
                                    program, cls._corePython())

    @classmethod
    def checkEnvironment(cls) -> list:
        """Error messages (empty when the core answers ``--version`` with the plugin's version):
        the real check, a subprocess. Successful checks are cached for the session and stamped
        on disk (:meth:`stampedVersion`); failed ones are repeated after a few seconds."""
        program = cls.getCoreProgram()
        if program is None:
            python = cls.getVar(PYTHON_VAR)
            return [f"The IsoNet2 environment was not found: {PYTHON_VAR}={python} does not "
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
        if ok:
            found = coreVersion(result.stdout)
            if found != ISONET2_VERSION:
                ok = False
                message = (f"The IsoNet2 environment runs isonet2core {found or '(unknown)'}, "
                           f"but this plugin is version {ISONET2_VERSION}: the two must match. "
                           f"{cls.installHint()}")
            else:
                import pyworkflow as pw
                env_stamp.write_stamp(
                    env_stamp.stamp_path(pw.Config.SCIPION_USER_DATA, program), program,
                    cls._corePython(), found)
        cls._envChecks[program] = (ok, message, time.time())
        return [] if ok else [message]

    @classmethod
    def validateInstallation(cls):
        """Called by Scipion while it draws the protocol tree and by Protocol.validate() before
        a run: a missing or broken environment stops the protocol with :meth:`installHint`.

        Fast: the interpreter's existence and a fresh stamp of a passing check (the managed
        environment's install flag, or the stamp of an earlier check) answer without starting a
        process; only without such a stamp does the real check (:meth:`checkEnvironment`) run,
        once, and stamp its success."""
        program = cls.getCoreProgram()
        if program is not None and cls.stampedVersion(program) == ISONET2_VERSION:
            return []
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
    def torchArgs(cls) -> List[str]:
        """The pip arguments that install PyTorch (``ISONET2SCIPION_TORCH``, split like a shell
        would, so that it may carry e.g. ``--index-url`` to choose a CUDA build)."""
        return shlex.split(cls.getVar(TORCH_VAR) or "") or shlex.split(DEFAULT_TORCH_SPEC)

    @classmethod
    def installCommand(cls, useConda: bool) -> str:
        """The shell command that builds the managed environment in the package folder.

        The core is installed from a wheel built from this installed plugin's own files
        (:mod:`isonet2scipion.core_wheel`), so no registry lookup of this project happens;
        PyTorch (``ISONET2SCIPION_TORCH``) and the core's third-party requirements come from the
        package index."""
        torch = " ".join(shlex.quote(w) for w in cls.torchArgs())
        wheel = shlex.quote(core_wheel.wheel_name())
        buildWheel = f"{shlex.quote(sys.executable)} -m isonet2scipion.core_wheel ."

        def stamp(python):
            # the install target holds the core's version line: validateInstallation reads it
            # instead of starting the core (isonet2scipion.env_stamp); the log shows it too
            return (f"{python} -m isonet2core --version > {INSTALLED_FLAG}.tmp && "
                    f"cat {INSTALLED_FLAG}.tmp && mv {INSTALLED_FLAG}.tmp {INSTALLED_FLAG}")
        if useConda:
            return (f"{buildWheel} && {cls.getCondaActivationCmd()} conda create -y -n "
                    f"{ENV_NAME} python=3.11 && conda activate {ENV_NAME} && "
                    f"python -m pip install {torch} && python -m pip install ./{wheel} && "
                    f"{stamp('python')}")
        python = f"{VENV_DIR}/bin/python"
        return (f"{buildWheel} && {shlex.quote(sys.executable)} -m venv {VENV_DIR} && "
                f"{python} -m pip install {torch} && {python} -m pip install ./{wheel} && "
                f"{stamp(python)}")

    @classmethod
    def defineBinaries(cls, env):
        """``scipion installb isonet2scipion-<version>``: a conda env of that name (Python 3.11,
        PyTorch, isonet2core) where conda exists, else a venv in
        software/em/isonet2scipion-<version>/venv made with ``python -m venv`` and pip."""
        useConda = cls._condaAvailable()
        envPath = os.environ.get("PATH", "")
        env.addPackage(BINARY_NAME, version=ISONET2_VERSION, tar="void.tgz",
                       commands=[(cls.installCommand(useConda), INSTALLED_FLAG)],
                       neededProgs=[], vars={"PATH": envPath} if envPath else None,
                       default=True)


def scipionPath(value: str, home: Optional[str] = None) -> str:
    """A path variable's value made absolute: ``~`` expanded, a relative path taken from
    SCIPION_HOME (``home``; default pyworkflow's), as Scipion writes them in scipion.conf."""
    if home is None:
        import pyworkflow as pw
        home = pw.Config.SCIPION_HOME
    return os.path.join(home, os.path.expanduser(value))


def coreVersion(versionOutput: str) -> Optional[str]:
    """The version in the output of ``isonet2core --version`` (``isonet2core X.Y.Z``), or None."""
    return env_stamp.core_version(versionOutput)
