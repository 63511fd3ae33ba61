"""The code passes the project's linter and type checker, as the README's test command runs
them (settings in pyproject.toml): ruff (pyflakes, import order, bugbear) on everything, mypy
on the core."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_is_clean():
    proc = _run("ruff", "check", "--output-format", "concise", str(ROOT))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_is_clean_on_the_core():
    proc = _run("mypy")
    assert proc.returncode == 0 and "Success" in proc.stdout, proc.stdout + proc.stderr
