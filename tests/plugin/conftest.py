"""Fixtures of the plugin tests: the demo's quick run, shared by the demo, viewer and wizard
tests (the environment and hosts.conf are set by the repository's conftest.py)."""
import os
import subprocess
import sys

import pytest
import pyworkflow as pw


@pytest.fixture(scope="session")
def quick_demo(tmp_path_factory):
    """``python -m isonet2scipion.demo --quick`` in a fresh folder: (CompletedProcess, folder)."""
    folder = tmp_path_factory.mktemp("demo") / "isonet2_demo"
    result = subprocess.run([sys.executable, "-m", "isonet2scipion.demo", "--quick",
                             "--output", str(folder)], capture_output=True, text=True,
                            timeout=900, cwd=str(folder.parent))
    return result, folder


@pytest.fixture()
def demo_project(quick_demo):
    """The quick demo's Scipion project, loaded in this process (cwd = the project folder
    while the test runs): ``{protocol class name: protocol}``, and the project."""
    from pyworkflow.project import Project

    result, folder = quick_demo
    assert result.returncode == 0, result.stderr
    path = folder / "ScipionUserData" / "projects" / "isonet2_demo"
    cwd = os.getcwd()
    os.chdir(path)
    try:
        project = Project(pw.Config.getDomain(), str(path))
        project.load()
        yield {run.getClassName(): run for run in project.getRuns()}, project
    finally:
        os.chdir(cwd)
