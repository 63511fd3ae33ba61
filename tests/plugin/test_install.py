"""Installed the way Scipion installs plugins, in a new venv holding only Scipion's packages.

The distribution is built into a wheel from a copy of this source tree and installed without
extras beside scipion-pyworkflow, scipion-em, scipion-em-tomo, scipion-app (the launcher
that ``installb`` and ``tests`` need) and scipion-em-imod (the upstream plugin whose CTF import
the chain test uses). Then, through Scipion's own launcher: the protocol list, ``installb`` of
the managed environment (its core from the installed plugin's own files, never from a package
index), and ``scipion tests`` of the upstream chain (AreTomo-shaped tomograms, IMOD CTF series
with excluded views -> make mask -> refine -> predict, and the bad inputs) running the core in
that environment. About 6 minutes here: PyPI downloads and a CPU torch wheel from the cache.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from isonet2scipion.constants import ENV_NAME, INSTALLED_FLAG, ISONET2_VERSION, PIP_DISTRIBUTION

SOURCE = Path(__file__).resolve().parents[2]
SCIPION_ONLY = ["scipion-pyworkflow", "scipion-em", "scipion-em-tomo", "scipion-app",
                "scipion-em-imod"]


def _run(args, **kwargs):
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-4000:]}"
    return result.stdout


@pytest.mark.slow
def test_fresh_scipion_installs_the_plugin_builds_its_environment_and_runs_the_chain(tmp_path):
    src = tmp_path / "src"             # a copy: building leaves no files in the working tree
    src.mkdir()
    for item in ("pyproject.toml", "README.md", "requirements"):
        (shutil.copytree if (SOURCE / item).is_dir() else shutil.copy)(SOURCE / item, src / item)
    for package in ("isonet2core", "isonet2scipion"):
        shutil.copytree(SOURCE / package, src / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"),
          str(src)])
    wheel, = (tmp_path / "dist").glob("scipion_em_isonet2scipion-*.whl")

    venv = tmp_path / "scipion"
    _run([sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    _run([python, "-m", "pip", "install", "-q", *SCIPION_ONLY, str(wheel)])
    installed = _run([python, "-m", "pip", "list", "--format=freeze"]).lower()
    assert f"{PIP_DISTRIBUTION}=={ISONET2_VERSION}" in installed
    assert "torch" not in installed          # no extras: the core's stack stays out of Scipion

    home = tmp_path / "home"
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("ISONET2SCIPION_", "PYTHON", "VIRTUAL_ENV"))}
    environ.update(SCIPION_HOME=str(home), SCIPION_USER_DATA=str(home / "data"),
                   SCIPION_DOMAIN="pwem", SCIPION_NOTIFY="False", SCIPION_TEST_NOSYNC="1",
                   SQLITE_JOURNAL_MODE="WAL", OMP_NUM_THREADS="2",
                   PATH=str(venv / "bin") + os.pathsep + os.environ.get("PATH", ""))
    home.mkdir()
    scipion = [python, "-m", "scipion"]
    _run(scipion + ["config", "--overwrite", "--unattended"], env=environ, cwd=home)

    listed = _run(scipion + ["protocols"], env=environ, cwd=home)
    for name in ("ProtIsoNet2MakeMask", "ProtIsoNet2Refine", "ProtIsoNet2Predict",
                 "ProtIsoNet2Denoise", "ProtIsoNet2Deconv", "ProtIsoNet2ImportModel"):
        assert name in listed

    out = _run(scipion + ["installb", ENV_NAME], env=environ, cwd=home)
    em = home / "software" / "em" / ENV_NAME
    assert (em / INSTALLED_FLAG).exists(), out[-3000:]
    assert f"isonet2core {ISONET2_VERSION}" in out
    # the core came from the wheel built from the installed plugin, not from an index
    assert f"isonet2core-{ISONET2_VERSION}-py3-none-any.whl" in out
    assert PIP_DISTRIBUTION not in out
    core = _run([str(em / "venv" / "bin" / "python"), "-c",
                 "import isonet2core, torch; print(isonet2core.__file__)"], cwd=tmp_path)
    assert core.strip().startswith(str(em / "venv"))

    tested = _run(scipion + ["test", "isonet2scipion.tests.test_upstream_chain"],
                  env=environ, cwd=home)
    assert "FAILED" not in tested and "Error" not in tested.split("Ran ")[-1], tested[-4000:]
