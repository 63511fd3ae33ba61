"""Peak memory and time of ``isonet2 deconv`` and ``isonet2 make-mask`` against the tomogram's size
(``python -m bench.memory_scale``).

For each ``--sizes`` entry ``ZxYxX`` a tomogram is synthesised into ``--work`` (smooth random
noise: white noise smoothed in x and y, plus a little along z within each slab; written slab by
slab, so making it never holds the volume) with a one-row tomograms STAR. Then
``isonet2 deconv`` and ``isonet2 make-mask`` (on the synthesised map, ``--input_column
rlnTomoReconstructedTomogram``) each run in a child process, and its peak resident set
(``ru_maxrss`` of ``os.wait4``: "Maximum resident set size" of ``/usr/bin/time -v``) and wall
time are recorded; ``--memory_gb`` is passed to both when given (default: theirs, the available
memory). ``--dtype float16`` writes mode-12 maps (half the bytes of float32); ``--sparse`` writes
noise into one slab in 16 and leaves the rest of the file a hole (a tomogram larger than the
free memory costs no disk until read; its scratch and outputs do). ``--code DIR`` runs the
commands from another checkout of the project (put first on ``PYTHONPATH``), e.g. the commit
before a change, for a before/after table (``--label`` names the rows).

Writes ``--out``/``memory_scale_<date>.json`` and ``.md`` (merged with rows already there for
other labels, so before and after land in one table).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import mrcfile.mrcinterpreter
import numpy as np
import scipy.ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = "160x512x512,160x1024x1024,320x1024x1024,320x1448x1448"
DATE = "2026-12-06"
PIXEL_SIZE_A = 10.0
_SLAB_BYTES = 64 * 1024 * 1024      # bytes of float32 noise made at a time


def parse_size(text: str) -> Tuple[int, int, int]:
    """``ZxYxX`` as a shape.

    Parameters
    ----------
    text : str
        E.g. ``160x1024x1024``.

    Returns
    -------
    tuple of int
        ``(z, y, x)``.

    Raises
    ------
    ValueError
        Not three positive integers.
    """
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"size {text!r}: expected ZxYxX, e.g. 160x1024x1024")
    z, y, x = (int(p) for p in parts)
    return z, y, x


def _header(shape: Sequence[int], dtype: np.dtype, voxel_size_a: float) -> bytes:
    """The 1024-byte MRC header mrcfile writes for a new volume of ``shape`` and ``dtype``."""
    mrc = mrcfile.mrcinterpreter.MrcInterpreter()
    mrc._create_default_attributes()
    mrc._set_new_data(np.broadcast_to(np.zeros((), dtype=dtype), tuple(shape)))
    mrc.update_header_from_data()
    mrc.voxel_size = voxel_size_a
    return mrc.header.tobytes()


def synthesise(path: Path, shape: Tuple[int, int, int], dtype: str = "float32", sparse: bool = False,
               seed: int = 0) -> Path:
    """Write a tomogram of smooth noise slab by slab (kept when already there with that size).

    Parameters
    ----------
    path : Path
        The MRC file.
    shape : tuple of int
        ``(z, y, x)``.
    dtype : str
        ``float32`` (mode 2) or ``float16`` (mode 12).
    sparse : bool
        Noise in one slab in 16, holes elsewhere.
    seed : int
        Of the noise.

    Returns
    -------
    Path
        ``path``.
    """
    stored = np.dtype(dtype)
    nz, ny, nx = shape
    header = _header(shape, stored, PIXEL_SIZE_A)
    size = len(header) + nz * ny * nx * stored.itemsize
    if path.is_file() and path.stat().st_size == size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    step = max(1, _SLAB_BYTES // (4 * ny * nx))
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(header)
        for i, z0 in enumerate(range(0, nz, step)):
            z1 = min(z0 + step, nz)
            if sparse and i % 16:
                continue
            slab = rng.standard_normal((z1 - z0, ny, nx), dtype=np.float32)
            slab = ndi.gaussian_filter(slab, (1.0, 2.0, 2.0), mode="wrap")
            slab -= 0.5 * (slab > 0.3)          # dense blobs: something for the mask to find
            fh.seek(len(header) + z0 * ny * nx * stored.itemsize)
            fh.write(slab.astype(stored).tobytes())
            del slab
        fh.truncate(size)
    os.replace(tmp, path)
    return path


def write_star(work: Path, tomogram: Path, name: str) -> Path:
    """A one-row tomograms STAR for ``tomogram`` (pixel size, defocus 30000 A, ac 0.1).

    Parameters
    ----------
    work : Path
        Its folder.
    tomogram : Path
        The map.
    name : str
        Its rlnTomoName.

    Returns
    -------
    Path
        The STAR.
    """
    sys.path.insert(0, str(ROOT))
    from isonet2core.io import star
    path = work / f"{name}.star"
    star.TomogramsTable.from_records([{star.TOMO_NAME: name, star.TOMO_FULL: str(tomogram),
                                       star.PIXEL_SIZE: PIXEL_SIZE_A, star.DEFOCUS: 30000.0,
                                       star.AC: 0.1}]).write(path)
    return path


def run_step(args: List[str], work: Path, log: Path, code: Optional[Path]) -> Dict[str, object]:
    """``isonet2 ARGS`` in a child process: its exit code, wall time and peak resident set.

    Parameters
    ----------
    args : list of str
        The subcommand and its arguments.
    work : Path
        Working folder.
    log : Path
        Receives its output.
    code : Path, optional
        A checkout to run instead of this one.

    Returns
    -------
    dict
        ``rc``, ``seconds``, ``max_rss_bytes``, ``command``.
    """
    entry = "import sys; from isonet2core.cli.main import main; sys.exit(main())"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(code or ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", entry, *args], stdout=out, stderr=subprocess.STDOUT,
                                cwd=work, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    return {"rc": os.waitstatus_to_exitcode(status), "seconds": round(time.perf_counter() - t0, 2),
            "max_rss_bytes": int(usage.ru_maxrss) * 1024,
            "command": "isonet2 " + " ".join(shlex.quote(a) for a in args)}


def measure(shape: Tuple[int, int, int], work: Path, *, dtype: str, sparse: bool, memory_gb: Optional[float],
            ncpus: int, code: Optional[Path], label: str, steps: Sequence[str]) -> List[Dict[str, object]]:
    """Synthesise one tomogram and run the steps on it.

    Parameters
    ----------
    shape : tuple of int
        ``(z, y, x)``.
    work : Path
        Working folder (tomograms are kept there for later runs).
    dtype : str
        Of the tomogram file.
    sparse : bool
        Mostly holes (:func:`synthesise`).
    memory_gb : float, optional
        Passed as ``--memory_gb``.
    ncpus : int
        ``--ncpus`` of deconv.
    code : Path, optional
        Another checkout to run.
    label : str
        Names the rows.
    steps : sequence of str
        ``deconv`` and/or ``make-mask``.

    Returns
    -------
    list of dict
        One row per step.
    """
    name = "x".join(map(str, shape)) + ("_f16" if dtype == "float16" else "") + ("_sparse" if sparse else "")
    tomogram = synthesise(work / "tomograms" / f"{name}.mrc", shape, dtype, sparse)
    star_path = write_star(work, tomogram, name)
    budget = [] if memory_gb is None else ["--memory_gb", str(memory_gb)]
    rows = []
    for step in steps:
        out = work / f"{step}_{label or 'run'}"
        args = [step, str(star_path), "--output_dir", str(out), *budget]
        args += ["--ncpus", str(ncpus)] if step == "deconv" else ["--input_column", "rlnTomoReconstructedTomogram"]
        result = run_step(args, work, work / f"{step}_{name}_{label or 'run'}.log", code)
        rows.append({"label": label, "size": "x".join(map(str, shape)), "dtype": dtype, "sparse": sparse,
                     "input_bytes": tomogram.stat().st_size, "step": step, "memory_gb": memory_gb, **result})
        print(f"{label:>8} {rows[-1]['size']:>14} {dtype} {step:>9}: rc {result['rc']}, peak RSS "
              f"{result['max_rss_bytes'] / 2**30:.2f} GiB, {result['seconds']} s", flush=True)
        for written in out.glob("*.mrc"):
            written.unlink()                     # the next size needs the disk
    return rows


def machine() -> Dict[str, object]:
    """The machine and libraries, for the results.

    Returns
    -------
    dict
        CPU count, memory, Python, numpy, scipy, torch.
    """
    import scipy
    import torch
    meminfo = Path("/proc/meminfo").read_text().split("\n") if Path("/proc/meminfo").exists() else []
    total = next((int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemTotal:")), None)
    return {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
            "mem_total_bytes": total, "python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "torch": torch.__version__}


def markdown(results: Dict[str, object]) -> str:
    """The results as a Markdown table.

    Parameters
    ----------
    results : dict
        ``machine``, ``rows`` and ``notes``.

    Returns
    -------
    str
        The page.
    """
    rows = results["rows"]
    lines = [f"# deconv and make-mask: peak memory against tomogram size ({DATE})", "",
             "`python -m bench.memory_scale`; peak resident set of each command's process "
             "(`ru_maxrss`), wall time. Machine: " + ", ".join(f"{k} {v}" for k, v in results["machine"].items()),
             "", "| code | size (z x y x x) | dtype | input | step | memory_gb | peak RSS | peak / input | time | rc |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:   # type: ignore[union-attr]
        lines.append(f"| {r['label'] or '-'} | {r['size']}{' sparse' if r['sparse'] else ''} | {r['dtype']} | "
                     f"{r['input_bytes'] / 2**20:.0f} MiB | {r['step']} | {r['memory_gb'] or 'default'} | "
                     f"{r['max_rss_bytes'] / 2**30:.2f} GiB | {r['max_rss_bytes'] / r['input_bytes']:.1f} | "
                     f"{r['seconds']:.1f} s | {r['rc']} |")
    notes = results.get("notes") or []
    if notes:
        lines += [""] + [f"- {note}" for note in notes]   # type: ignore[union-attr]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    """Measure, print and write the table.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 when every command succeeded, else 1.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated ZxYxX")
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--sparse", action="store_true", help="mostly holes (module documentation)")
    parser.add_argument("--memory_gb", type=float, help="passed to both commands")
    parser.add_argument("--ncpus", type=int, default=2, help="deconv's --ncpus")
    parser.add_argument("--steps", default="deconv,make-mask")
    parser.add_argument("--work", type=Path, default=Path("/tmp/isonet2_memory_scale"))
    parser.add_argument("--code", type=Path, help="run this checkout of the project instead")
    parser.add_argument("--label", default="", help="names this run's rows (e.g. before, after)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--note", action="append", default=[], help="a line for the results' notes")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    steps = [s for s in args.steps.split(",") if s]
    args.work.mkdir(parents=True, exist_ok=True)
    rows: List[Dict[str, object]] = []
    for shape in sizes:
        rows += measure(shape, args.work, dtype=args.dtype, sparse=args.sparse, memory_gb=args.memory_gb,
                        ncpus=args.ncpus, code=args.code, label=args.label, steps=steps)
    path = args.out / f"memory_scale_{DATE}.json"
    before = json.loads(path.read_text()) if path.is_file() else {}
    previous = before.get("rows", [])
    key = lambda r: (r["label"], r["size"], r["dtype"], r["sparse"], r["step"], r["memory_gb"])  # noqa: E731
    fresh = {key(r) for r in rows}
    results = {"date": DATE, "machine": machine(),
               "rows": [r for r in previous if key(r) not in fresh] + rows,
               "notes": before.get("notes", []) + args.note,
               "commands": before.get("commands", []) + [
                   "python -m bench.memory_scale " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))]}
    sys.path.insert(0, str(ROOT))
    from isonet2core.io.atomic import write_text
    write_text(path, json.dumps(results, indent=1) + "\n")
    write_text(path.with_suffix(".md"), markdown(results))
    print(f"wrote {path} and {path.with_suffix('.md')}")
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
