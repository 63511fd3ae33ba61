"""Shared test set-up of ``tests/`` and ``isonet2scipion/tests/``.

Scipion reads its configuration from environment variables only, so they are set here,
before any test module imports pyworkflow: a private SCIPION_HOME / SCIPION_USER_DATA under a
temporary folder, no notifications, no data-set downloads, and SQLITE_JOURNAL_MODE=WAL (with
the default journal mode tomo's imports deadlock on these machines).
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

_SCIPION_ROOT = Path(tempfile.mkdtemp(prefix="isonet2-scipion-tests-"))
for _key, _value in {
    "SCIPION_HOME": str(_SCIPION_ROOT / "home"),
    "SCIPION_USER_DATA": str(_SCIPION_ROOT / "userdata"),
    "SCIPION_DOMAIN": "pwem",
    "SCIPION_NOTIFY": "False",
    "SCIPION_TEST_NOSYNC": "1",
    "SQLITE_JOURNAL_MODE": "WAL",
    # the plugin runs the core with the interpreter running the tests
    "ISONET2SCIPION_PYTHON": sys.executable,
}.items():
    os.environ.setdefault(_key, _value)
for _key in ("SCIPION_HOME", "SCIPION_USER_DATA"):
    Path(os.environ[_key]).mkdir(parents=True, exist_ok=True)
# the interpreter's bin folder first: protocols are launched as `python3 ...`
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
os.environ.setdefault("OMP_NUM_THREADS", "2")


def pytest_configure(config):
    # projects need a hosts configuration to launch protocols
    import pyworkflow as pw
    from pyworkflow.protocol.hosts import HostConfig
    if not os.path.exists(pw.Config.SCIPION_HOSTS):
        os.makedirs(os.path.dirname(pw.Config.SCIPION_HOSTS), exist_ok=True)
        HostConfig.writeBasic(pw.Config.SCIPION_HOSTS)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_SCIPION_ROOT, ignore_errors=True)
