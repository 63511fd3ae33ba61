"""Stamps of installation checks that passed, so that Scipion's GUI never waits on one.

Scipion calls ``Plugin.validateInstallation`` while it draws the protocol tree (one call per
protocol, ``Protocol.isInstalled``) and before every run. The real check runs the core
(``<program> --version``) in the IsoNet2 environment, a subprocess that may take long (a cold
conda activation, a network file system). It runs only when no fresh stamp vouches for the
environment:

- the managed environment (``scipion installb isonet2scipion-<version>``): its install target,
  ``<ISONET2SCIPION_HOME>/isonet2scipion_<version>_installed``, holds the line that
  ``python -m isonet2core --version`` printed at install time (:func:`managed_flag_version`);
- any other interpreter or conda environment: after a check that passed, a JSON stamp in
  ``<SCIPION_USER_DATA>/isonet2scipion/`` records the command, the core's version and a
  fingerprint of the environment: the modification times of the interpreter and of its
  ``site-packages`` folders (a ``pip install`` or ``pip uninstall`` there changes them). A conda
  command has no file to fingerprint: its stamp expires after :data:`CONDA_STAMP_TTL_S`.

A stamp is only ever a shortcut for a passing check: without one (or with one of another
version) the real check runs and reports what it finds.
"""
import glob
import hashlib
import json
import os
import re
import time
from typing import List, Optional

CONDA_STAMP_TTL_S = 24 * 3600
_STAMP_DIR = "isonet2scipion"


def core_version(version_output: str) -> Optional[str]:
    """The version in the output of ``isonet2core --version`` (``isonet2core X.Y.Z``), or None."""
    match = re.search(r"isonet2core\s+(\S+)", version_output or "")
    return match.group(1) if match else None


def managed_flag_version(flag_path: str) -> Optional[str]:
    """The core version written into the managed environment's install flag, or None (no flag,
    or an empty one left by an install that only touched it)."""
    try:
        with open(flag_path, encoding="utf-8", errors="replace") as handle:
            return core_version(handle.read(4096))
    except OSError:
        return None


def fingerprint(python: Optional[str]) -> Optional[List]:
    """Modification times that change when the environment of ``python`` changes: the
    interpreter and the ``site-packages``/``dist-packages`` folders of its prefix. None for a
    conda command (no interpreter path) or a missing interpreter."""
    if not python or not os.path.isfile(python):
        return None
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(python)))
    folders = sorted(glob.glob(os.path.join(prefix, "lib", "python3*", "*-packages")))
    return [[path, os.stat(path).st_mtime_ns] for path in [python] + folders]


def stamp_path(user_data: str, program: str) -> str:
    """The stamp file of ``program`` (one file per core command)."""
    key = hashlib.sha1(program.encode("utf-8")).hexdigest()[:16]
    return os.path.join(user_data, _STAMP_DIR, f"envcheck-{key}.json")


def read_stamp(path: str, program: str, python: Optional[str]) -> Optional[str]:
    """The core version a fresh stamp vouches for, or None (no stamp, another command, a changed
    environment, an expired conda stamp, an unreadable file)."""
    try:
        with open(path, encoding="utf-8") as handle:
            stamp = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(stamp, dict) or stamp.get("program") != program:
        return None
    current = fingerprint(python)
    if current is None:
        if python or time.time() - float(stamp.get("time", 0)) > CONDA_STAMP_TTL_S:
            return None
    elif stamp.get("fingerprint") != current:
        return None
    return stamp.get("version")


def write_stamp(path: str, program: str, python: Optional[str], version: str) -> None:
    """Record a passing check (best effort: a folder that cannot be written means the check
    simply runs again next time)."""
    stamp = {"program": program, "version": version, "time": time.time(),
             "fingerprint": fingerprint(python)}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(stamp, handle)
        os.replace(temporary, path)
    except OSError:
        pass
