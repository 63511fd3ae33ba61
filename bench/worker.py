"""Measurements in fresh processes: ``python -m bench.worker KIND JSON``.

``KIND`` names a measuring function (:data:`FUNCTIONS`: ``train``
:func:`bench.train_speed.measure_config`, ``predict`` :func:`bench.predict_speed.measure_size`,
``fit`` :func:`bench.quality.fit_worker`), found by name when it runs, so this module imports
none of the sections that use it; ``JSON`` holds the keyword arguments and ``result_path``,
where the JSON result is written. :func:`run_worker` (or :func:`start_worker` +
:func:`finish_worker`) runs one.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import REPO_ROOT

FUNCTIONS = {"train": "bench.train_speed:measure_config",
             "predict": "bench.predict_speed:measure_size",
             "fit": "bench.quality:fit_worker"}


def measure_function(kind: str):
    """The measuring function of a worker ``kind``."""
    if kind not in FUNCTIONS:
        raise ValueError(f"unknown worker kind {kind!r} (expected {', '.join(FUNCTIONS)})")
    module, name = FUNCTIONS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def start_worker(kind: str, args: dict):
    """Start ``python -m bench.worker KIND JSON`` in a fresh process; returns ``(process,
    result_path)`` for :func:`finish_worker`."""
    fd, result_path = tempfile.mkstemp(prefix="bench-", suffix=".json")
    os.close(fd)
    payload = dict(args, result_path=result_path)
    cmd = [sys.executable, "-m", "bench.worker", kind, json.dumps(payload)]
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(result_path + ".err", "w") as err:   # a file: a full pipe would block the worker
        proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), env=env, stdout=subprocess.DEVNULL,
                                stderr=err)
    return proc, result_path


def finish_worker(proc: subprocess.Popen, result_path: str, timeout_s: float) -> dict:
    """Wait for a worker (killing it, its own process only, past ``timeout_s``) and return its
    JSON result, or ``{"status": "timeout" | "failed", "reason": ...}``."""
    err_path = Path(result_path + ".err")
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        Path(result_path).unlink(missing_ok=True)
        err_path.unlink(missing_ok=True)
        return {"status": "timeout", "reason": f"killed after the cap of {timeout_s:.0f} s"}
    try:
        text = Path(result_path).read_text()
        result = json.loads(text) if text.strip() else None
        err = err_path.read_text(errors="replace")
    finally:
        Path(result_path).unlink(missing_ok=True)
        err_path.unlink(missing_ok=True)
    if proc.returncode != 0 or result is None:
        tail = " | ".join(err.strip().splitlines()[-3:])
        return {"status": "failed", "reason": f"worker exit {proc.returncode}: {tail}"}
    result.setdefault("status", "ok")
    return result


def run_worker(kind: str, args: dict, timeout_s: float, in_process: bool = False) -> dict:
    """Run one measurement in a fresh process (:func:`start_worker` + :func:`finish_worker`),
    adding ``worker_wall_s`` (process start and imports included). ``in_process`` calls the
    measuring function here instead (quick mode: no process start-up, but no time cap and
    less honest memory peaks; marked ``in_process`` in the result)."""
    t0 = time.perf_counter()
    if in_process:
        result = dict(measure_function(kind)(**args), in_process=True)
    else:
        proc, result_path = start_worker(kind, args)
        result = finish_worker(proc, result_path, timeout_s)
    result["worker_wall_s"] = round(time.perf_counter() - t0, 1)
    return result


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    kind, args = argv[0], json.loads(argv[1])
    result = measure_function(kind)(**args)
    Path(args["result_path"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
