"""A wheel of ``isonet2core`` built from the files of the installed plugin.

``scipion installb`` builds the managed environment from this distribution's own files, never
from a registry lookup of this project: the core package next to the plugin (wherever pip put
it) is zipped into ``isonet2core-<version>-py3-none-any.whl`` with its requirements
(``isonet2core/requirements.txt``) and the ``isonet2`` console script, and pip installs that
file. Only third-party requirements (torch, numpy, ...) come from the package index.

Run as ``python -m isonet2scipion.core_wheel OUTPUT_DIR``; prints the wheel's path.
"""
import argparse
import base64
import hashlib
import os
import sys
import zipfile
from pathlib import Path
from typing import List, Tuple

import isonet2core

DIST_NAME = "isonet2core"
REQUIREMENTS_FILE = "requirements.txt"      # inside the isonet2core package
CONSOLE_SCRIPT = "isonet2 = isonet2core.cli.main:main"
_SKIPPED_DIRS = {"__pycache__"}
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


def core_package_dir() -> Path:
    """The folder of the ``isonet2core`` package this plugin imports."""
    return Path(isonet2core.__file__).resolve().parent


def core_requirements(package_dir: Path = None) -> List[str]:
    """The core's requirements, one per non-comment line of its ``requirements.txt``
    (``package_dir``: a folder holding that file; default the imported package)."""
    path = Path(package_dir or core_package_dir()) / REQUIREMENTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the isonet2core package is incomplete")
    return [line.strip() for line in path.read_text().splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def wheel_name(version: str = isonet2core.__version__) -> str:
    return f"{DIST_NAME}-{version}-py3-none-any.whl"


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"sha256={digest}"


def _package_files(package_dir: Path) -> List[Tuple[str, Path]]:
    """``(archive name, file)`` of every file of the package, sorted, caches skipped."""
    files = []
    for root, dirs, names in os.walk(package_dir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIPPED_DIRS)
        for name in sorted(names):
            if name.endswith(_SKIPPED_SUFFIXES):
                continue
            path = Path(root) / name
            files.append((f"{DIST_NAME}/{path.relative_to(package_dir).as_posix()}", path))
    return files


def build_core_wheel(output_dir) -> Path:
    """Write the wheel of the imported ``isonet2core`` into ``output_dir`` (created if needed;
    written to a temporary name, then renamed) and return its path.

    :raises FileNotFoundError: when the package has no requirements file.
    """
    package_dir = core_package_dir()
    version = isonet2core.__version__
    requirements = core_requirements(package_dir)
    dist_info = f"{DIST_NAME}-{version}.dist-info"
    metadata = "\n".join(
        ["Metadata-Version: 2.1", f"Name: {DIST_NAME}", f"Version: {version}",
         "Summary: IsoNet2 cryo-ET restoration in PyTorch (core of the Scipion plugin "
         "scipion-em-isonet2scipion)", "Requires-Python: >=3.9"]
        + [f"Requires-Dist: {r}" for r in requirements]) + "\n"
    generated = {
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (b"Wheel-Version: 1.0\nGenerator: isonet2scipion.core_wheel\n"
                               b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
        f"{dist_info}/entry_points.txt": f"[console_scripts]\n{CONSOLE_SCRIPT}\n".encode(),
    }
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / wheel_name(version)
    tmp = target.with_name(target.name + ".part")
    record = []
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, path in _package_files(package_dir):
            data = path.read_bytes()
            zf.writestr(arcname, data)
            record.append(f"{arcname},{_record_hash(data)},{len(data)}")
        for arcname, data in generated.items():
            zf.writestr(arcname, data)
            record.append(f"{arcname},{_record_hash(data)},{len(data)}")
        record.append(f"{dist_info}/RECORD,,")
        zf.writestr(f"{dist_info}/RECORD", "\n".join(record) + "\n")
    os.replace(tmp, target)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m isonet2scipion.core_wheel",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("output_dir", help="folder that receives the wheel")
    args = parser.parse_args(argv)
    try:
        print(build_core_wheel(args.output_dir))
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
