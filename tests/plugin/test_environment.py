"""The Plugin class: which interpreter runs the core, its environment, the messages when it
is missing, and the managed environment that ``scipion installb isonet2-<version>`` builds."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyworkflow.plugin import Domain

from isonet2scipion.constants import (INSTALLED_FLAG, ISONET2_ENV_NAME, ISONET2_PYTHON,
                                      ISONET2_VERSION)

MODULE = Domain.getPluginModule("isonet2scipion")   # registers the plugin's variables
Plugin = MODULE.Plugin
SOURCE = Path(__file__).resolve().parents[2]


class RecordingEnv:
    """Stands in for scipion.install.funcs.Environment: records addPackage calls."""

    def __init__(self):
        self.packages = []

    def addPackage(self, name, **kwargs):
        self.packages.append((name, kwargs))


def test_core_runs_with_isonet2_python():
    # conftest points ISONET2_PYTHON at the interpreter of the tests
    assert Plugin.getVar(ISONET2_PYTHON) == sys.executable
    assert Plugin.getCoreProgram().startswith(sys.executable)
    assert Plugin.checkEnvironment() == []
    assert Plugin.validateInstallation() == []


def test_missing_environment_says_how_to_install(monkeypatch, tmp_path):
    missing = str(tmp_path / "nowhere" / "python")
    monkeypatch.setitem(Plugin._vars, ISONET2_PYTHON, missing)
    monkeypatch.setenv(ISONET2_PYTHON, missing)
    errors = Plugin.checkEnvironment()
    assert len(errors) == 1
    assert missing in errors[0]
    assert f"installb {ISONET2_ENV_NAME}" in errors[0] and ISONET2_PYTHON in errors[0]
    with pytest.raises(RuntimeError, match="installb"):
        Plugin.runCore(object(), "deconv", [])


def test_broken_environment_is_reported(monkeypatch, tmp_path):
    broken = tmp_path / "python"        # an interpreter without isonet2core
    broken.write_text("#!/bin/sh\necho 'No module named isonet2core' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setitem(Plugin._vars, ISONET2_PYTHON, str(broken))
    errors = Plugin.checkEnvironment()
    assert len(errors) == 1 and "broken" in errors[0] and "No module named isonet2core" in errors[0]
    assert f"installb {ISONET2_ENV_NAME}" in errors[0]


def test_environ_drops_pythonpath_and_sets_visible_gpus(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/scipion/site-packages")
    env = Plugin.getEnviron([1, 3])
    assert "PYTHONPATH" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "1,3"
    assert Plugin.getEnviron([])["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert "CUDA_VISIBLE_DEVICES" not in Plugin.getEnviron()


def test_citation_is_registered():
    assert "IsoNet2 determines cellular structures" in MODULE._bibtex["Liu2025IsoNet2"]["title"]


@pytest.mark.parametrize("conda", [False, True])
def test_define_binaries_declares_the_environment(monkeypatch, conda):
    monkeypatch.setattr(Plugin, "_condaAvailable", classmethod(lambda cls: conda))
    env = RecordingEnv()
    Plugin.defineBinaries(env)
    (name, kwargs), = env.packages
    assert (name, kwargs["version"], kwargs["tar"]) == ("isonet2", ISONET2_VERSION, "void.tgz")
    (command, target), = kwargs["commands"]
    assert target == INSTALLED_FLAG and command.endswith(f"touch {INSTALLED_FLAG}")
    assert "torch==2.13.0" in command and "[core]" in command
    assert "isonet2core --version" in command
    if conda:
        assert f"conda create -y -n {ISONET2_ENV_NAME} python=3.11" in command
    else:
        assert f"{sys.executable} -m venv venv" in command


@pytest.mark.slow
def test_managed_venv_builds_and_runs_the_core(monkeypatch, tmp_path):
    """Build the venv exactly as defineBinaries declares it (python -m venv, pip install
    torch==2.13.0 - a CPU wheel from this machine's wheel cache - then this package with
    [core], from a copy of the source so the working tree gets no build files), then run the
    core's --version in it through the Plugin. About 2 minutes here (PyPI downloads)."""
    src = tmp_path / "src"
    src.mkdir()
    for item in ("setup.py", "README.md"):
        shutil.copy(SOURCE / item, src / item)
    for package in ("isonet2core", "isonet2scipion"):
        shutil.copytree(SOURCE / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(Plugin, "_condaAvailable", classmethod(lambda cls: False))
    monkeypatch.setattr(Plugin, "coreRequirement", classmethod(lambda cls: f"{src}[core]"))
    env = RecordingEnv()
    Plugin.defineBinaries(env)
    (command, flag), = env.packages[0][1]["commands"]
    build = tmp_path / ISONET2_ENV_NAME      # scipion runs the commands in software/em/<name>
    build.mkdir()
    environ = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run(command, shell=True, cwd=build, env=environ, executable="/bin/bash",
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
    assert (build / flag).exists()
    assert f"isonet2core {ISONET2_VERSION}" in result.stdout

    python = build / "venv" / "bin" / "python"
    monkeypatch.setitem(Plugin._vars, ISONET2_PYTHON, str(python))
    monkeypatch.setenv(ISONET2_PYTHON, str(python))
    assert Plugin.getCoreProgram().startswith(str(python))
    assert Plugin.checkEnvironment() == []
    # the core in the venv is the copy, not this checkout, and it has torch
    out = subprocess.run([str(python), "-c", "import isonet2core, torch; print(isonet2core.__file__)"],
                         stdout=subprocess.PIPE, text=True, check=True, cwd=tmp_path).stdout
    assert out.strip().startswith(str(build / "venv"))
