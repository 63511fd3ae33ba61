"""The Plugin class: which interpreter runs the core, its environment, the messages when it
is missing or of another version, and the managed environment that ``scipion installb
isonet2scipion-<version>`` builds from the plugin's own files."""
import os
import subprocess
import sys

import pytest
from pyworkflow.plugin import Domain

from isonet2scipion import core_wheel
from isonet2scipion.constants import BINARY_NAME, ENV_NAME, INSTALLED_FLAG, ISONET2_VERSION, PYTHON_VAR, TORCH_VAR

MODULE = Domain.getPluginModule("isonet2scipion")   # registers the plugin's variables
Plugin = MODULE.Plugin


class RecordingEnv:
    """Stands in for scipion.install.funcs.Environment: records addPackage calls."""

    def __init__(self):
        self.packages = []

    def addPackage(self, name, **kwargs):
        self.packages.append((name, kwargs))


def test_core_runs_with_isonet2_python():
    # conftest points PYTHON_VAR at the interpreter of the tests
    assert Plugin.getVar(PYTHON_VAR) == sys.executable
    assert Plugin.getCoreProgram().startswith(sys.executable)
    assert Plugin.checkEnvironment() == []
    assert Plugin.validateInstallation() == []


def test_missing_environment_says_how_to_install(monkeypatch, tmp_path):
    missing = str(tmp_path / "nowhere" / "python")
    monkeypatch.setitem(Plugin._vars, PYTHON_VAR, missing)
    monkeypatch.setenv(PYTHON_VAR, missing)
    errors = Plugin.checkEnvironment()
    assert len(errors) == 1
    assert missing in errors[0]
    assert f"installb {ENV_NAME}" in errors[0] and PYTHON_VAR in errors[0]
    with pytest.raises(RuntimeError, match="installb"):
        Plugin.runCore(object(), "deconv", [])


def test_broken_environment_is_reported(monkeypatch, tmp_path):
    broken = tmp_path / "python"        # an interpreter without isonet2core
    broken.write_text("#!/bin/sh\necho 'No module named isonet2core' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setitem(Plugin._vars, PYTHON_VAR, str(broken))
    errors = Plugin.checkEnvironment()
    assert len(errors) == 1 and "broken" in errors[0] and "No module named isonet2core" in errors[0]
    assert f"installb {ENV_NAME}" in errors[0]


def fake_core(tmp_path, version):
    """An interpreter stand-in whose ``-m isonet2core --version`` answers ``version``."""
    path = tmp_path / f"python-{version}"
    path.write_text(f"#!/bin/sh\necho 'isonet2core {version}'\n")
    path.chmod(0o755)
    return str(path)


def test_core_of_another_version_is_refused_naming_both(monkeypatch, tmp_path):
    monkeypatch.setitem(Plugin._vars, PYTHON_VAR, fake_core(tmp_path, "0.0.9"))
    errors = Plugin.checkEnvironment()
    assert len(errors) == 1
    assert "isonet2core 0.0.9" in errors[0] and f"plugin is version {ISONET2_VERSION}" in errors[0]
    assert f"installb {ENV_NAME}" in errors[0]
    monkeypatch.setitem(Plugin._vars, PYTHON_VAR, fake_core(tmp_path, ISONET2_VERSION))
    assert Plugin.checkEnvironment() == []


def test_path_variables_written_relative_resolve_against_scipion_home():
    # `scipion config` writes ISONET2SCIPION_PYTHON = software/em/<env>/venv/bin/python
    assert MODULE.scipionPath("software/em/x/venv/bin/python", home="/opt/scipion") == \
        "/opt/scipion/software/em/x/venv/bin/python"
    assert MODULE.scipionPath("/usr/bin/python3", home="/opt/scipion") == "/usr/bin/python3"
    assert MODULE.scipionPath("~/py/bin/python", home="/opt/scipion") == \
        os.path.expanduser("~/py/bin/python")
    assert os.path.isabs(Plugin.getVar(PYTHON_VAR))


def test_core_version_is_read_from_the_version_line():
    assert MODULE.coreVersion("isonet2core 0.1.0\n") == "0.1.0"
    assert MODULE.coreVersion("warning: x\nisonet2core 1.2.3rc1") == "1.2.3rc1"
    assert MODULE.coreVersion("Python 3.11") is None


def test_environ_drops_pythonpath_and_sets_visible_gpus(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/scipion/site-packages")
    env = Plugin.getEnviron([1, 3])
    assert "PYTHONPATH" not in env
    assert env["CUDA_VISIBLE_DEVICES"] == "1,3"
    assert Plugin.getEnviron([])["CUDA_VISIBLE_DEVICES"] == ""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert "CUDA_VISIBLE_DEVICES" not in Plugin.getEnviron()


def test_gpus_under_a_queue_are_the_jobs(monkeypatch):
    """Run locally, a step's GPUs (Scipion's GPU slots) become CUDA_VISIBLE_DEVICES; under a
    queue the job's own CUDA_VISIBLE_DEVICES (set by SLURM to the GPUs it gave the job) is left
    as it is, never replaced by Scipion's renumbered ids; a switched-off GPU hides all."""
    from isonet2scipion.protocols import ProtIsoNet2Refine

    class _Executor:
        def getGpuList(self):
            return [0]

    prot = ProtIsoNet2Refine()
    prot._stepsExecutor = _Executor()
    prot.useGpu.set(True)
    assert prot._stepGpus() == [0]
    prot._useQueue.set(True)
    assert prot._stepGpus() is None
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")          # what SLURM set in the job
    assert Plugin.getEnviron(prot._stepGpus())["CUDA_VISIBLE_DEVICES"] == "3"
    assert prot._deviceArgs() == []                            # the core uses all it sees
    prot.useGpu.set(False)
    assert prot._stepGpus() == [] and prot._deviceArgs() == ["--device", "cpu"]


def test_citation_is_registered():
    assert "IsoNet2 determines cellular structures" in MODULE._bibtex["Liu2025IsoNet2"]["title"]


@pytest.mark.parametrize("conda", [False, True])
def test_define_binaries_declares_the_environment(monkeypatch, conda):
    monkeypatch.setattr(Plugin, "_condaAvailable", classmethod(lambda cls: conda))
    env = RecordingEnv()
    Plugin.defineBinaries(env)
    (name, kwargs), = env.packages
    assert (name, kwargs["version"], kwargs["tar"]) == (BINARY_NAME, ISONET2_VERSION, "void.tgz")
    assert ENV_NAME == f"isonet2scipion-{ISONET2_VERSION}"
    (command, target), = kwargs["commands"]
    # the install target holds the core's version line (validateInstallation's stamp)
    assert target == INSTALLED_FLAG and command.endswith(
        f"-m isonet2core --version > {INSTALLED_FLAG}.tmp && cat {INSTALLED_FLAG}.tmp && "
        f"mv {INSTALLED_FLAG}.tmp {INSTALLED_FLAG}")
    # the core comes from a wheel of the plugin's own files, never from a registry lookup
    assert command.startswith(f"{sys.executable} -m isonet2scipion.core_wheel . && ")
    assert f"pip install ./isonet2core-{ISONET2_VERSION}-py3-none-any.whl" in command
    assert "scipion-em-isonet2" not in command and "[core]" not in command
    assert "pip install torch==2.13.0 &&" in command
    if conda:
        assert f"conda create -y -n {ENV_NAME} python=3.11" in command
    else:
        assert f"{sys.executable} -m venv venv" in command


def test_torch_variable_carries_pip_arguments(monkeypatch):
    spec = "torch==2.13.0 --index-url 'https://download.pytorch.org/whl/cu126'"
    monkeypatch.setitem(Plugin._vars, TORCH_VAR, spec)
    assert Plugin.torchArgs() == ["torch==2.13.0", "--index-url",
                                  "https://download.pytorch.org/whl/cu126"]
    command = Plugin.installCommand(useConda=False)
    assert ("pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126 &&"
            in command)
    monkeypatch.setitem(Plugin._vars, TORCH_VAR, "  ")
    assert Plugin.torchArgs() == ["torch==2.13.0"]


def test_core_wheel_holds_the_core_and_its_requirements(tmp_path):
    import zipfile
    wheel = core_wheel.build_core_wheel(tmp_path / "out")
    assert wheel.name == f"isonet2core-{ISONET2_VERSION}-py3-none-any.whl"
    assert [p.name for p in wheel.parent.iterdir()] == [wheel.name]     # no temporary left
    package = core_wheel.core_package_dir()
    expected = {f"isonet2core/{p.relative_to(package).as_posix()}"
                for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                and p.suffix != ".pyc"}
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist = f"isonet2core-{ISONET2_VERSION}.dist-info"
        assert {n for n in names if not n.startswith(dist)} == expected
        assert "isonet2core/simulation/data/structures.npz" in names and "isonet2core/cli/main.py" in names
        metadata = zf.read(f"{dist}/METADATA").decode()
        record = zf.read(f"{dist}/RECORD").decode().splitlines()
        assert "isonet2 = isonet2core.cli.main:main" in zf.read(f"{dist}/entry_points.txt").decode()
    requires = [line.split(": ", 1)[1] for line in metadata.splitlines()
                if line.startswith("Requires-Dist")]
    assert requires == core_wheel.core_requirements() and any(r.startswith("torch>=2.6") for r in requires)
    assert f"Version: {ISONET2_VERSION}" in metadata
    assert len(record) == len(names)                   # every file listed, RECORD itself too
    # the extra "core" of the distribution is the same list (one source)
    from importlib.metadata import requires as dist_requires
    core_extra = [r.split(";")[0].strip() for r in dist_requires("scipion-em-isonet2scipion")
                  if 'extra == "core"' in r]
    assert core_extra == requires


def test_plugin_requirements_are_declared_without_extras():
    """Installed without extras (as the plugin manager does) the plugin must import: every
    third-party package its modules import is a plain requirement of the distribution."""
    from importlib.metadata import requires as dist_requires
    plain = {r.split(";")[0].split(">")[0].split("=")[0].strip().lower()
             for r in dist_requires("scipion-em-isonet2scipion") if "extra ==" not in r}
    assert {"scipion-pyworkflow", "scipion-em", "scipion-em-tomo", "pandas", "starfile",
            "numpy"} <= plain
    assert "torch" not in plain


STAND_IN = '''"""Stand-in for the Scipion team's plugin for the official IsoNet2 (scipion-em-isonet2,
package isonet2): its names, nothing else."""
import pwem

class Plugin(pwem.Plugin):
    _homeVar = "ISONET2_HOME"

    @classmethod
    def _defineVariables(cls):
        cls._defineEmVar("ISONET2_HOME", "isonet2-2.0")
        cls._defineVar("ISONET2_ENV_ACTIVATION", "conda activate isonet2-2.0")

    @classmethod
    def defineBinaries(cls, env):
        env.addPackage("isonet2", version="2.0", tar="void.tgz", commands=[], default=True)
'''

BOTH_LOADED = '''
import json
from pyworkflow.plugin import Domain
plugins = Domain.getPlugins()
ours, theirs = plugins["isonet2scipion"].Plugin, plugins["isonet2"].Plugin
class Env:
    def __init__(self):
        self.names = []
    def addPackage(self, name, **kwargs):
        self.names.append(f"{name}-{kwargs['version']}")
env = Env()
theirs.defineBinaries(env)
ours.defineBinaries(env)
print(json.dumps({"ours_home": ours.getVar(ours._homeVar), "ours_python": ours.getVar("ISONET2SCIPION_PYTHON"),
                  "theirs_home": theirs.getVar("ISONET2_HOME"),
                  "theirs_activation": theirs.getVar("ISONET2_ENV_ACTIVATION"),
                  "ours_activation": ours.getVar("ISONET2SCIPION_ENV_ACTIVATION"),
                  "binaries": env.names, "protocols": sorted(k for k in Domain.getProtocols() if "IsoNet2" in k)}))
'''


def test_loads_beside_the_scipion_teams_isonet2_plugin(tmp_path):
    """Their distribution (scipion-em-isonet2, package isonet2, ISONET2_* variables, binary
    isonet2) and ours load in one Scipion process; each keeps its own variables and binary."""
    site = tmp_path / "site"
    (site / "isonet2").mkdir(parents=True)
    (site / "isonet2" / "__init__.py").write_text(STAND_IN)
    info = site / "scipion_em_isonet2-3.0.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: scipion-em-isonet2\n"
                                   "Version: 3.0.0\n")
    (info / "entry_points.txt").write_text("[pyworkflow.plugin]\nisonet2 = isonet2\n")
    environ = dict(os.environ, PYTHONPATH=str(site))
    environ.pop(PYTHON_VAR, None)
    result = subprocess.run([sys.executable, "-c", BOTH_LOADED], env=environ, cwd=tmp_path,
                            capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    import json
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["theirs_home"].endswith("isonet2-2.0")
    assert got["theirs_activation"] == "conda activate isonet2-2.0"
    assert got["ours_home"].endswith(ENV_NAME) and got["ours_home"] != got["theirs_home"]
    assert got["ours_python"] == os.path.join(got["ours_home"], "venv", "bin", "python")
    assert got["ours_activation"] == f"conda activate {ENV_NAME}"
    assert got["binaries"] == ["isonet2-2.0", ENV_NAME]
    assert "ProtIsoNet2Refine" in got["protocols"]


# ----------------------------------------------------------- the GUI never waits (issue 26, 7)
def _no_process(monkeypatch):
    """Any subprocess started from here on fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a subprocess was started: {args[:1]}")
    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, refuse)


def fake_env(tmp_path, version, name="env"):
    """A venv-shaped folder whose bin/python answers ``isonet2core <version>``."""
    (tmp_path / name / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (tmp_path / name / "bin").mkdir()
    python = tmp_path / name / "bin" / "python"
    python.write_text(f"#!/bin/sh\necho 'isonet2core {version}'\n")
    python.chmod(0o755)
    return python


def test_validate_installation_starts_no_process_once_stamped(monkeypatch):
    """The protocol tree calls validateInstallation for every protocol: after one passing
    check (stamped on disk), it answers without a subprocess, also in a new session."""
    import time

    refine = Domain.getProtocols()["ProtIsoNet2Refine"]    # linked to the plugin by Domain
    monkeypatch.setattr(Plugin, "_envChecks", {})
    assert Plugin.checkEnvironment() == []                 # the real check: stamps its success
    monkeypatch.setattr(Plugin, "_envChecks", {})          # a new Scipion session
    _no_process(monkeypatch)
    start = time.monotonic()
    assert Plugin.validateInstallation() == []
    assert refine.isInstalled()                            # what the tree drawing calls
    assert time.monotonic() - start < 0.5


def test_managed_install_flag_is_the_stamp(monkeypatch, tmp_path):
    """`scipion installb` writes the core's version line into its install target; with it,
    validateInstallation starts nothing. An empty flag (an older install) means a real check."""
    from isonet2scipion.constants import HOME_VAR
    python = fake_env(tmp_path, "0.0.9", name="venv")      # the real check would refuse it
    monkeypatch.setitem(Plugin._vars, HOME_VAR, str(tmp_path))
    monkeypatch.setitem(Plugin._vars, PYTHON_VAR, str(python))
    monkeypatch.setattr(Plugin, "_envChecks", {})
    assert Plugin.managedFlag() == str(tmp_path / INSTALLED_FLAG)
    (tmp_path / INSTALLED_FLAG).write_text("")
    errors = Plugin.validateInstallation()                 # no version in the flag: checked
    assert len(errors) == 1 and "isonet2core 0.0.9" in errors[0]
    (tmp_path / INSTALLED_FLAG).write_text(f"isonet2core {ISONET2_VERSION}\n")
    monkeypatch.setattr(Plugin, "_envChecks", {})
    _no_process(monkeypatch)
    assert Plugin.validateInstallation() == []


def test_a_changed_environment_is_checked_again(monkeypatch, tmp_path):
    """The stamp holds a fingerprint of the interpreter and its site-packages: a pip install
    there (here: another core version) makes validateInstallation run the real check, whose
    message names both versions; a stamp is never taken for another version."""
    python = fake_env(tmp_path, ISONET2_VERSION)
    monkeypatch.setitem(Plugin._vars, PYTHON_VAR, str(python))
    monkeypatch.setattr(Plugin, "_envChecks", {})
    assert Plugin.validateInstallation() == []             # checked and stamped
    program = Plugin.getCoreProgram()
    assert Plugin.stampedVersion(program) == ISONET2_VERSION
    python.write_text("#!/bin/sh\necho 'isonet2core 0.0.9'\n")   # `pip install` of another core
    site = tmp_path / "env" / "lib" / "python3.11" / "site-packages"
    (site / "isonet2core-0.0.9.dist-info").mkdir()
    os.utime(site, ns=(1, 1))
    monkeypatch.setattr(Plugin, "_envChecks", {})
    assert Plugin.stampedVersion(program) is None
    errors = Plugin.validateInstallation()
    assert len(errors) == 1 and "isonet2core 0.0.9" in errors[0]
    assert f"plugin is version {ISONET2_VERSION}" in errors[0]


def test_conda_stamps_expire(monkeypatch, tmp_path):
    """A conda command has no interpreter file to fingerprint: its stamp lasts a day."""
    import json

    from isonet2scipion import env_stamp
    path = str(tmp_path / "stamp.json")
    program = "source activate.sh; conda activate x && python -m isonet2core"
    env_stamp.write_stamp(path, program, None, ISONET2_VERSION)
    assert env_stamp.read_stamp(path, program, None) == ISONET2_VERSION
    assert env_stamp.read_stamp(path, program + " ", None) is None       # another command
    stamp = json.loads(open(path).read())
    stamp["time"] -= env_stamp.CONDA_STAMP_TTL_S + 1
    open(path, "w").write(json.dumps(stamp))
    assert env_stamp.read_stamp(path, program, None) is None
    assert env_stamp.read_stamp(str(tmp_path / "missing.json"), program, None) is None


def test_logo_is_a_small_png_shipped_with_the_package():
    """The protocol forms show the plugin's logo (``_logo`` beside ``__init__.py``); the
    distribution ships it (package data ``*.png``)."""
    from pathlib import Path

    import tomllib
    from PIL import Image
    logo = Path(MODULE.__file__).with_name(MODULE._logo)
    assert logo.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and logo.stat().st_size < 20_000
    with Image.open(logo) as image:
        assert image.format == "PNG" and image.width > image.height >= 40
    refine = Domain.getProtocols()["ProtIsoNet2Refine"]
    assert refine.getPluginLogoPath() == str(logo)
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert "*.png" in pyproject["tool"]["setuptools"]["package-data"]["isonet2scipion"]
