"""Peak memory and time of ``isonet2 deconv``, ``make-mask``, ``refine``, ``denoise`` and ``predict``
against the tomogram's size (``python -m bench.memory_scale``).

For each ``--sizes`` entry ``ZxYxX`` a tomogram is synthesised into ``--work`` (smooth random
noise: white noise smoothed in x and y, plus a little along z within each slab; written slab by
slab, so making it never holds the volume) with a one-row tomograms STAR. Each of ``--steps``
then runs in its own child process, and its peak resident set (``VmHWM`` of its own process
image, written at its exit; not ``ru_maxrss`` of ``os.wait4`` or ``/usr/bin/time -v``, which on
Linux include the parent's resident set at the exec; every step is one process on the CPU) and
wall time are recorded:

* ``deconv`` and ``make-mask`` (on the synthesised map, ``--input_column
  rlnTomoReconstructedTomogram``); ``--memory_gb`` is passed to both (and to ``predict``) when given (default:
  theirs, the available memory);
* ``refine`` (isonet2-n2n) and ``denoise`` on even/odd halves of the same map (each the map
  plus its own white noise of the map's standard deviation, written slab by slab as the map
  is), with the mask of this run's ``make-mask`` when it ran, for one epoch with
  :data:`TRAIN_ARGS` (``unet-small``, batches of 4, 8 cubes, mixed precision, on the CPU) and
  cubes of ``--cube_size`` (48): the first epoch's peak. Their rows also give the network's
  own size (parameters x 4 bytes) so that the table shows the peak minus the network;
* ``predict`` with the ``refine`` model of this run (on the CPU): of both halves and their
  FSC-weighted average (the N2N default), or with ``--predict_input full`` of the synthesised
  map alone (one map: a tomogram without halves, half the time).

``--dtype float16`` writes mode-12 maps (half the bytes of float32); ``--sparse`` writes
noise into one slab in 16 and leaves the rest of the file a hole (a tomogram larger than the
free memory costs no disk until read; its scratch and outputs do). ``--code DIR`` runs the
commands from another checkout of the project (put first on ``PYTHONPATH``), e.g. the commit
before a change, for a before/after table (``--label`` names the rows). The tomogram and its
halves are kept in ``--work`` for later runs (three times the tomogram's bytes of disk); the
maps the steps write are removed after each size.

Writes ``--out``/``memory_scale_<date>.json`` and ``.md`` (merged with rows already there for
other labels, so before and after land in one table), again after every measured step, so a
run cut short keeps the rows it measured.
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
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import mrcfile.mrcinterpreter
import numpy as np
import scipy.ndimage as ndi

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = "160x512x512,160x1024x1024,320x1024x1024,320x1448x1448"
DATE = "2026-12-06"
PIXEL_SIZE_A = 10.0
_SLAB_BYTES = 64 * 1024 * 1024      # bytes of float32 noise made at a time
_HEADER_BYTES = 1024
STEPS = ("deconv", "make-mask", "refine", "denoise", "predict")   # the order they run in
TRAINING = ("refine", "denoise")
ARCH = "unet-small"
CUBE_SIZE = 48
TRAIN_ARGS = ["--arch", ARCH, "--batch_size", "4", "--epochs", "1",
              "--number_subtomos", "8", "--mixed_precision", "True", "--device", "cpu", "--overwrite", "True"]


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


def _write_slabs(path: Path, shape: Tuple[int, int, int], stored: np.dtype, sparse: bool,
                 slab_of: Callable[[int, int], np.ndarray]) -> Path:
    """Write an MRC file slab by slab, atomically (``.part`` then rename); ``slab_of(z0, z1)``
    gives planes ``z0 .. z1 - 1`` as float32; with ``sparse`` only one slab in 16 is written, the
    rest stay holes. Kept when already there with the right size."""
    nz, ny, nx = shape
    header = _header(shape, stored, PIXEL_SIZE_A)
    size = len(header) + nz * ny * nx * stored.itemsize
    if path.is_file() and path.stat().st_size == size:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    step = max(1, _SLAB_BYTES // (4 * ny * nx))
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(header)
        for i, z0 in enumerate(range(0, nz, step)):
            if sparse and i % 16:
                continue
            slab = slab_of(z0, min(z0 + step, nz))
            fh.seek(len(header) + z0 * ny * nx * stored.itemsize)
            fh.write(slab.astype(stored).tobytes())
            del slab
        fh.truncate(size)
    os.replace(tmp, path)
    return path


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
    rng = np.random.default_rng(seed)
    _, ny, nx = shape

    def slab_of(z0: int, z1: int) -> np.ndarray:
        slab = rng.standard_normal((z1 - z0, ny, nx), dtype=np.float32)
        slab = ndi.gaussian_filter(slab, (1.0, 2.0, 2.0), mode="wrap")
        slab -= 0.5 * (slab > 0.3)          # dense blobs: something for the mask to find
        return slab

    return _write_slabs(path, shape, np.dtype(dtype), sparse, slab_of)


def synthesise_halves(tomogram: Path, paths: Sequence[Path], shape: Tuple[int, int, int],
                      dtype: str = "float32", sparse: bool = False, seed: int = 1) -> List[Path]:
    """Even/odd halves of ``tomogram``: the map plus independent white noise, slab by slab.

    Each half is the map plus noise of the standard deviation of the map's first slab (the
    same for all slabs), so the halves share the map's signal and nothing else; the slabs are
    read from the map's file and written as :func:`synthesise` writes them (kept when already
    there with that size; with ``sparse`` the map's holes stay holes).

    Parameters
    ----------
    tomogram : Path
        The map written by :func:`synthesise` with these ``shape``, ``dtype`` and ``sparse``.
    paths : sequence of Path
        The two halves' MRC files.
    shape : tuple of int
        ``(z, y, x)``.
    dtype : str
        ``float32`` or ``float16``.
    sparse : bool
        As the map was written.
    seed : int
        Of the noise (each half its own stream).

    Returns
    -------
    list of Path
        ``paths``.
    """
    stored = np.dtype(dtype)
    nz, ny, nx = shape
    source = np.memmap(tomogram, dtype=stored, mode="r", offset=_HEADER_BYTES, shape=shape)
    step = max(1, _SLAB_BYTES // (4 * ny * nx))
    sigma = float(np.asarray(source[:min(step, nz)], dtype=np.float32).std()) or 1.0
    for k, path in enumerate(paths):
        rng = np.random.default_rng([seed, k])

        def slab_of(z0: int, z1: int, rng: np.random.Generator = rng) -> np.ndarray:
            slab = np.array(source[z0:z1], dtype=np.float32)
            slab += sigma * rng.standard_normal(slab.shape, dtype=np.float32)
            return slab

        _write_slabs(path, shape, stored, sparse, slab_of)
    return list(paths)


def write_star(work: Path, tomogram: Optional[Path], name: str, *, halves: Sequence[Path] = (),
               mask: Optional[Path] = None, stem: Optional[str] = None) -> Path:
    """A one-row tomograms STAR (pixel size, defocus 30000 A, ac 0.1) for a map and/or halves.

    Parameters
    ----------
    work : Path
        Its folder.
    tomogram : Path, optional
        The map (rlnTomoReconstructedTomogram).
    name : str
        Its rlnTomoName.
    halves : sequence of Path
        Even and odd halves (rlnTomoReconstructedTomogramHalf1/2), or none.
    mask : Path, optional
        rlnMaskName.
    stem : str, optional
        The file's name without ``.star`` (default ``name``).

    Returns
    -------
    Path
        The STAR.
    """
    sys.path.insert(0, str(ROOT))
    from isonet2core.io import star
    path = work / f"{stem or name}.star"
    record: Dict[str, Any] = {star.TOMO_NAME: name}
    if tomogram is not None:
        record[star.TOMO_FULL] = str(tomogram)
    if halves:
        record[star.TOMO_HALF1], record[star.TOMO_HALF2] = (str(h) for h in halves)
    record.update({star.PIXEL_SIZE: PIXEL_SIZE_A, star.DEFOCUS: 30000.0, star.AC: 0.1})
    if mask is not None:
        record[star.MASK] = str(mask)
    star.TomogramsTable.from_records([record]).write(path)
    return path


def mask_of(star_path: Path) -> Optional[Path]:
    """The rlnMaskName that ``make-mask`` recorded in ``star_path``, when it is there.

    Parameters
    ----------
    star_path : Path
        A one-row tomograms STAR.

    Returns
    -------
    Path or None
        The mask file, None when none is recorded or it is missing.
    """
    sys.path.insert(0, str(ROOT))
    from isonet2core.io import star
    table = star.TomogramsTable.read(star_path)
    mask = table.path(0, star.MASK) if table.has_column(star.MASK) and table.value(0, star.MASK) is not None else None
    return mask if mask is not None and mask.is_file() else None


def network_bytes(arch: str = ARCH) -> int:
    """The network's own size: its parameters x 4 bytes (float32 weights).

    Parameters
    ----------
    arch : str
        Architecture name (:func:`isonet2core.nets.registry.build`).

    Returns
    -------
    int
        Bytes.
    """
    sys.path.insert(0, str(ROOT))
    from isonet2core.nets import registry
    return 4 * sum(p.numel() for p in registry.build(arch).parameters())


def find_model(folder: Path) -> Optional[Path]:
    """The final model that ``refine`` wrote into ``folder`` (``network_*_full.pt``).

    Parameters
    ----------
    folder : Path
        Its ``--output_dir``.

    Returns
    -------
    Path or None
        The newest such file, None when there is none.
    """
    found = sorted(folder.glob("network_*_full.pt"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def run_step(args: List[str], work: Path, log: Path, code: Optional[Path]) -> Dict[str, Any]:
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
    # the child's own peak: VmHWM of its process image, written at exit. ru_maxrss of wait4 is not
    # it: exec records the peak of the image it replaces, a (v)fork of this parent, so every
    # child's ru_maxrss was at least this process's resident set when it started
    hwm = work / ".vmhwm"
    hwm.unlink(missing_ok=True)
    entry = ("import atexit, sys\n"
             "def _hwm(path=sys.argv.pop(1)):\n"
             "    with open('/proc/self/status') as f:\n"
             "        kib = [line.split()[1] for line in f if line.startswith('VmHWM:')]\n"
             "    open(path, 'w').write(kib[0] if kib else '')\n"
             "atexit.register(_hwm)\n"
             "from isonet2core.cli.main import main\n"
             "sys.exit(main())\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(code or ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", entry, str(hwm), *args], stdout=out,
                                stderr=subprocess.STDOUT, cwd=work, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    text = hwm.read_text().strip() if hwm.exists() else ""
    peak = int(text) * 1024 if text else int(usage.ru_maxrss) * 1024   # no /proc: an upper bound
    return {"rc": os.waitstatus_to_exitcode(status), "seconds": round(time.perf_counter() - t0, 2),
            "max_rss_bytes": peak,
            "command": "isonet2 " + " ".join(shlex.quote(a) for a in args)}


def measure(shape: Tuple[int, int, int], work: Path, *, dtype: str, sparse: bool, memory_gb: Optional[float],
            ncpus: int, code: Optional[Path], label: str, steps: Sequence[str], cube_size: int = CUBE_SIZE,
            predict_input: str = "halves",
            on_row: Optional[Callable[[Dict[str, Any]], None]] = None) -> List[Dict[str, Any]]:
    """Synthesise one tomogram (and its halves when a step needs them) and run the steps on it.

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
        Passed as ``--memory_gb`` (deconv, make-mask and predict).
    ncpus : int
        ``--ncpus`` of deconv, refine, denoise and predict.
    code : Path, optional
        Another checkout to run.
    label : str
        Names the rows.
    steps : sequence of str
        Some of :data:`STEPS`, run in that order (``predict`` needs the model of this run's
        ``refine``, or without ``refine`` in ``steps`` one a previous run left in its folder;
        else it is skipped).
    cube_size : int
        ``--cube_size`` of refine and denoise (the tomogram's smallest edge at most).
    predict_input : str
        ``halves`` (both halves and their average) or ``full`` (the map alone) for ``predict``.
    on_row : callable, optional
        Called with each row as soon as it is measured.

    Returns
    -------
    list of dict
        One row per step run.
    """
    name = "x".join(map(str, shape)) + ("_f16" if dtype == "float16" else "") + ("_sparse" if sparse else "")
    tomogram = synthesise(work / "tomograms" / f"{name}.mrc", shape, dtype, sparse)
    star_path = write_star(work, tomogram, name)
    halves: List[Path] = []
    halves_star = None
    if any(step in TRAINING + ("predict",) for step in steps):
        halves = synthesise_halves(tomogram, [work / "tomograms" / f"{name}_{h}.mrc" for h in ("even", "odd")],
                                   shape, dtype, sparse)
        halves_star = write_star(work, None, name, halves=halves, stem=f"{name}_halves")
    budget = [] if memory_gb is None else ["--memory_gb", str(memory_gb)]
    tag = label or "run"
    folders = {step: work / f"{step}_{tag}" for step in STEPS}
    rows: List[Dict[str, Any]] = []
    for step in [s for s in STEPS if s in steps]:
        out = folders[step]
        row_extra: Dict[str, Any] = {"memory_gb": None, "network_bytes": None, "mask": None, "cube_size": None}
        if step in ("deconv", "make-mask"):
            args = [step, str(star_path), "--output_dir", str(out), *budget]
            args += ["--ncpus", str(ncpus)] if step == "deconv" else ["--input_column", "rlnTomoReconstructedTomogram"]
            row_extra["memory_gb"] = memory_gb
        elif step in TRAINING:
            mask = mask_of(star_path) if "make-mask" in steps else None
            train_star = write_star(work, None, name, halves=halves, mask=mask, stem=f"{name}_{step}")
            args = [step, str(train_star), "--output_dir", str(out), *TRAIN_ARGS, "--cube_size", str(cube_size),
                    "--ncpus", str(ncpus)]
            args += ["--method", "isonet2-n2n"] if step == "refine" else []
            row_extra.update(network_bytes=network_bytes(), mask=mask is not None, cube_size=cube_size)
        else:
            refined = [r for r in rows if r["step"] == "refine"]
            model = find_model(folders["refine"]) if all(r["rc"] == 0 for r in refined) else None
            if model is None:
                print(f"{label:>8} {name:>14} {dtype} {step:>9}: skipped, no refine model in {folders['refine']}",
                      flush=True)
                continue
            args = [step, str(halves_star if predict_input == "halves" else star_path), str(model),
                    "--output_dir", str(out), "--device", "cpu", "--ncpus", str(ncpus), *budget]
            row_extra.update(predict_input=predict_input, memory_gb=memory_gb)
        result = run_step(args, work, work / f"{step}_{name}_{tag}.log", code)
        rows.append({"label": label, "size": "x".join(map(str, shape)), "dtype": dtype, "sparse": sparse,
                     "input_bytes": tomogram.stat().st_size, "step": step, **row_extra, **result})
        net = rows[-1]["network_bytes"]
        print(f"{label:>8} {rows[-1]['size']:>14} {dtype} {step:>9}: rc {result['rc']}, peak RSS "
              f"{result['max_rss_bytes'] / 2**30:.2f} GiB, {result['seconds']} s"
              + (f", network {net / 2**20:.1f} MiB" if net else ""), flush=True)
        if on_row is not None:
            on_row(rows[-1])
    for out in folders.values():
        for written in out.glob("**/*.mrc"):
            written.unlink()                     # the next size needs the disk
    return rows


def machine() -> Dict[str, Any]:
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


def _gib(value: Optional[float]) -> str:
    """Bytes as ``0.00 GiB``, ``-`` for None."""
    return "-" if value is None else f"{value / 2**30:.2f} GiB"


def _training(row: Dict[str, Any]) -> str:
    """`` (cube 48, mask)`` after a training step's name, `` (full map)`` or `` (halves)`` after
    predict's, empty for the others."""
    if row.get("predict_input"):
        return f" ({'full map' if row['predict_input'] == 'full' else 'halves'})"
    if row.get("cube_size") is None:
        return ""
    return f" (cube {row['cube_size']}{', mask' if row.get('mask') else ''})"


def markdown(results: Dict[str, Any]) -> str:
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
    lines = [f"# isonet2 steps: peak memory against tomogram size ({DATE})", "",
             "`python -m bench.memory_scale`; peak resident set of each command's process "
             "(`VmHWM`; rows labelled before the 'after (VmHWM)' ones: `ru_maxrss` of wait4, an upper bound), wall time; refine and denoise: one epoch of `" + " ".join(TRAIN_ARGS) + "` on "
             "even/odd halves (step column: cube size and mask, make-mask's; network: its parameters "
             "x 4 bytes). Machine: "
             + ", ".join(f"{k} {v}" for k, v in results["machine"].items()),
             "", "| code | size (z x y x x) | dtype | input | step | memory_gb | peak RSS | peak / input | "
             "network | peak - network | time | rc |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        net = r.get("network_bytes")
        budget = r["memory_gb"] or ("default" if r["step"] in ("deconv", "make-mask", "predict") else "-")
        lines.append(f"| {r['label'] or '-'} | {r['size']}{' sparse' if r['sparse'] else ''} | {r['dtype']} | "
                     f"{r['input_bytes'] / 2**20:.0f} MiB | {r['step']}{_training(r)} | "
                     f"{budget} | {_gib(r['max_rss_bytes'])} | {r['max_rss_bytes'] / r['input_bytes']:.1f} | "
                     f"{'-' if net is None else f'{net / 2**20:.1f} MiB'} | "
                     f"{'-' if net is None else _gib(r['max_rss_bytes'] - net)} | {r['seconds']:.1f} s | {r['rc']} |")
    notes = results.get("notes") or []
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    """Measure, print and write the table (again after every measured step).

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
    parser.add_argument("--memory_gb", type=float, help="passed to deconv, make-mask and predict")
    parser.add_argument("--ncpus", type=int, default=2, help="--ncpus of deconv, refine, denoise and predict")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated, of " + ",".join(STEPS))
    parser.add_argument("--predict_input", default="halves", choices=("halves", "full"),
                        help="predict both halves and their average, or the full map alone")
    parser.add_argument("--cube_size", type=int, default=CUBE_SIZE,
                        help="--cube_size of refine and denoise (at most the smallest tomogram edge)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/isonet2_memory_scale"))
    parser.add_argument("--code", type=Path, help="run this checkout of the project instead")
    parser.add_argument("--label", default="", help="names this run's rows (e.g. before, after)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results",
                        help="folder of memory_scale_<date>.json and .md")
    parser.add_argument("--note", action="append", default=[], help="a line for the results' notes")
    args = parser.parse_args(argv)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    steps = [s for s in args.steps.split(",") if s]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"--steps: unknown {','.join(unknown)}; choose from {','.join(STEPS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(ROOT))
    from isonet2core.io.atomic import write_text
    path = args.out / f"memory_scale_{DATE}.json"
    before = json.loads(path.read_text()) if path.is_file() else {}
    key = lambda r: (r["label"], r["size"], r["dtype"], r["sparse"], r["step"], r["memory_gb"],  # noqa: E731
                     r.get("cube_size"), r.get("predict_input"))
    results = {"date": DATE, "machine": machine(), "rows": list(before.get("rows", [])),
               "notes": before.get("notes", []) + args.note,
               "commands": before.get("commands", []) + [
                   "python -m bench.memory_scale " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))]}
    rows: List[Dict[str, Any]] = []

    def record(row: Dict[str, Any]) -> None:
        rows.append(row)
        results["rows"] = [r for r in results["rows"] if key(r) != key(row)] + [row]
        write_text(path, json.dumps(results, indent=1) + "\n")
        write_text(path.with_suffix(".md"), markdown(results))

    for shape in sizes:
        measure(shape, args.work, dtype=args.dtype, sparse=args.sparse, memory_gb=args.memory_gb,
                ncpus=args.ncpus, code=args.code, label=args.label, steps=steps,
                cube_size=args.cube_size, predict_input=args.predict_input, on_row=record)
    if rows:
        print(f"wrote {path} and {path.with_suffix('.md')}")
    return 0 if rows and all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
