"""Small data sets, model files, fingerprints and CLI runners shared by the reliability tests.

Volumes are ``(z, y, x)`` float32, "protein dark" smooth noise; every data set has two
tomograms (``t1``, ``t2``) with even/odd halves (and optionally a full map), pixel size 10 A,
so that a fault planted in the SECOND tomogram proves the command refused it before doing any
work on the first.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from isonet2core.io import mrcio, star

PIXEL_A = 10.0
SHAPE = (32, 40, 40)
CUBE = 16
ARCH = "unet-small"
REPO = Path(__file__).resolve().parents[2]


def smooth_volume(shape: Sequence[int], seed: int, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """A ``(z, y, x)`` float32 volume of low-pass noise with the given mean and std."""
    rng = np.random.default_rng(seed)
    k = [np.fft.fftfreq(n) for n in shape]
    kk = np.sqrt(sum(np.meshgrid(*[a ** 2 for a in k], indexing="ij")))
    v = np.real(np.fft.ifftn(np.fft.fftn(rng.normal(size=shape)) * np.exp(-(kk / 0.15) ** 2)))
    return (mean + std * (v - v.mean()) / v.std()).astype(np.float32)


def make_dataset(root: Path, *, n: int = 2, shape: Sequence[int] = SHAPE, full: bool = False,
                 star_name: str = "tomograms.star") -> Dict[str, object]:
    """Write ``n`` tomograms (halves in ``root/even``, ``root/odd``; full maps in ``root/full``
    when ``full``) and ``root/tomograms.star`` listing them. Returns paths by role:
    ``star``, ``even`` / ``odd`` / ``full`` (lists, one per tomogram), ``root``."""
    root = Path(root)
    records, maps = [], {"even": [], "odd": [], "full": []}
    for i in range(1, n + 1):
        name = f"t{i}"
        signal = smooth_volume(shape, 100 * i)
        rec = {star.TOMO_NAME: name, star.PIXEL_SIZE: PIXEL_A, star.DEFOCUS: 20000.0,
               star.TILT_MIN: -60.0, star.TILT_MAX: 60.0, star.N_SUBTOMO: 4}
        for j, half in enumerate(("even", "odd")):
            noisy = signal + 0.5 * smooth_volume(shape, 100 * i + j + 1)
            maps[half].append(mrcio.write_mrc(root / half / f"{name}.mrc", noisy, PIXEL_A))
        rec[star.TOMO_HALF1] = str(maps["even"][-1])
        rec[star.TOMO_HALF2] = str(maps["odd"][-1])
        if full:
            maps["full"].append(mrcio.write_mrc(root / "full" / f"{name}.mrc", signal, PIXEL_A))
            rec[star.TOMO_FULL] = str(maps["full"][-1])
        records.append(rec)
    star_path = star.TomogramsTable.from_records(records).write(root / star_name)
    return {"root": root, "star": star_path, **maps}


def make_checkpoint(path: Path, *, method: str = "isonet2-n2n", arch: str = ARCH, cube: int = CUBE,
                    seed: int = 0, epoch: Optional[int] = None) -> Path:
    """A small valid model file (a fresh batch-normalised network: not the identity)."""
    import torch

    from isonet2core.config import TrainConfig, to_dict
    from isonet2core.io.model_file import ModelFile
    from isonet2core.nets.registry import build

    torch.manual_seed(seed)
    net = build(arch)
    return ModelFile(model_state=net.state_dict(), arch=arch, cube_size=cube, method=method, epoch=epoch,
                     config=to_dict(TrainConfig(method=method, arch=arch, cube_size=cube))).save(path)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(paths: Iterable[Path]) -> Dict[str, str]:
    """sha256 of every file given (folders: every file under them)."""
    out = {}
    for p in paths:
        p = Path(p)
        files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
        for f in files:
            out[str(f)] = sha256(f)
    return out


def temp_files(folder: Path) -> List[Path]:
    """Temporary files of atomic writes left in ``folder`` (recursively)."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and
                  (p.name.endswith(".tmp") or ".tmp." in p.name or p.name.startswith(".")))


def files_under(folder: Path) -> List[Path]:
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def run_main(argv: List[str]) -> Tuple[int, str, str]:
    """Run ``isonet2 argv`` in this process; ``(exit code, stdout, stderr)``.

    Only the error line the command writes itself is in ``stderr``: progress logging goes to
    the logging handlers, not to this stream.
    """
    from isonet2core.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in argv])
        except SystemExit as exc:  # must not happen: main returns its code
            raise AssertionError(f"main() raised SystemExit({exc.code}) for {argv}") from None
    return rc, out.getvalue(), err.getvalue()


def cli_env(**extra: str) -> Dict[str, str]:
    env = dict(os.environ)
    env.update({"ISONET2_LOG_LEVEL": "ERROR", "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
    env.pop("ISONET2_DEBUG", None)
    env.update(extra)
    return env


def run_cli(argv: List[str], *, cwd: Optional[Path] = None, timeout: float = 120,
            env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run ``python -m isonet2core argv`` in a subprocess (log level ERROR)."""
    return subprocess.run([sys.executable, "-m", "isonet2core", *map(str, argv)], cwd=cwd,
                          env=env or cli_env(), capture_output=True, text=True, timeout=timeout)


def assert_one_error_line(err: str, *needles: str) -> str:
    """The command's stderr is exactly one line ``isonet2 ...: error: ...`` holding every needle."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err}"
    assert lines[0].startswith("isonet2") and "error:" in lines[0], lines[0]
    for needle in needles:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"
    return lines[0]
