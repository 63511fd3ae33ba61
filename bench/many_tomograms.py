"""Peak memory of ``isonet2 refine`` on many tomograms against few (``python -m bench.many_tomograms``).

The data: ``isonet2 simulate`` (``--n_tomograms`` even/odd pairs of ``--shape``), ``isonet2
prepare-star`` and ``isonet2 make-mask`` (one float32 mask per tomogram) into ``WORK``, made once
and reused. Then, for each count ``N`` of ``--counts``, ``isonet2 refine`` of the first ``N``
tomograms (``--tomo_idx 1-N``) for one epoch at tiny settings (``unet-small``, cube 16, batch 2,
``--number_subtomos`` cubes per tomogram, CPU, one thread) runs in a child process, and its
memory is recorded:

* ``max_rss_kib``: the child's peak resident set (``ru_maxrss`` of ``os.wait4``, the figure
  ``/usr/bin/time -v`` reports as "Maximum resident set size");
* ``peak_rss_anon_kib`` and ``peak_rss_file_kib``: the highest ``RssAnon`` (the process's own
  memory: arrays, tensors) and ``RssFile`` (pages of mapped files: libraries, memory-mapped
  maps) of ``/proc/PID/status``, polled every 20 ms.

The figures include the Python interpreter, torch and the network (a few hundred MiB); the
difference between the counts is what grows with the number of tomograms.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

REFINE = ["--arch", "unet-small", "--cube_size", "16", "--batch_size", "2", "--epochs", "1",
          "--seed", "0", "--device", "cpu", "--ncpus", "1", "--mixed_precision", "False",
          "--overwrite", "True"]


def isonet2_command(*args) -> List[str]:
    """The command line of ``isonet2 ARGS`` with this interpreter.

    Parameters
    ----------
    *args
        The subcommand and its arguments (converted to str).

    Returns
    -------
    list of str
        ``[python, -c, <entry point>, ARGS...]``.
    """
    entry = "import sys; from isonet2core.cli.main import main; sys.exit(main())"
    return [sys.executable, "-c", entry, *map(str, args)]


def make_data(work: Path, n_tomograms: int, shape: str) -> Path:
    """Simulated even/odd tomograms, their STAR and masks in ``work`` (kept when already there).

    Parameters
    ----------
    work : Path
        The folder.
    n_tomograms : int
        How many tomograms.
    shape : str
        ``z,y,x`` of each.

    Returns
    -------
    Path
        The tomograms STAR (with rlnMaskName).
    """
    star = work / "tomograms.star"
    if star.is_file() and (work / "mask").is_dir():
        return star
    work.mkdir(parents=True, exist_ok=True)
    for args in (["simulate", "-o", work / "data", "--n_tomograms", n_tomograms, "--shape", shape,
                  "--seed", "0"],
                 ["prepare-star", "--even", work / "data" / "even", "--odd", work / "data" / "odd",
                  "--star_name", star, "--defocus", "50000"],
                 ["make-mask", star, "--output_dir", work / "mask"]):
        subprocess.run(isonet2_command(*args), check=True, capture_output=True, cwd=work)
    return star


def _status_kib(pid: int) -> Dict[str, int]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in re.findall(r"^(RssAnon|RssFile|VmHWM):\s+(\d+)\s+kB", text, re.M)}


def measure(star: Path, count: int, work: Path, subtomos: int) -> Dict[str, object]:
    """One refine of the first ``count`` tomograms in a child process, and its memory.

    Parameters
    ----------
    star : Path
        The tomograms STAR.
    count : int
        Tomograms trained on (``--tomo_idx 1-count``).
    work : Path
        Where the run's folder ``refine_<count>`` goes.
    subtomos : int
        Cubes per tomogram (``--number_subtomos``).

    Returns
    -------
    dict
        ``tomograms``, ``command``, ``seconds``, ``max_rss_kib``, ``peak_rss_anon_kib``,
        ``peak_rss_file_kib``.

    Raises
    ------
    RuntimeError
        The refine failed (its error output attached).
    """
    out = work / f"refine_{count}"
    idx = "1" if count == 1 else f"1-{count}"
    args = ["refine", star, "--output_dir", out, "--tomo_idx", idx, "--number_subtomos", subtomos, *REFINE]
    command = isonet2_command(*args)
    t0 = time.time()
    peaks = {"RssAnon": 0, "RssFile": 0}
    with open(work / f"refine_{count}.log", "wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=work)
        rusage = None
        while rusage is None:
            for key, value in _status_kib(proc.pid).items():
                if key in peaks:
                    peaks[key] = max(peaks[key], value)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                rusage, proc.returncode = usage, os.waitstatus_to_exitcode(status)
            else:
                time.sleep(0.02)
    if proc.returncode != 0:
        raise RuntimeError(f"refine of {count} tomograms exited {proc.returncode}:\n"
                           + (work / f"refine_{count}.log").read_text()[-3000:])
    return {"tomograms": count, "command": "isonet2 " + " ".join(shlex.quote(str(a)) for a in args),
            "seconds": round(time.time() - t0, 1), "max_rss_kib": int(rusage.ru_maxrss),
            "peak_rss_anon_kib": peaks["RssAnon"], "peak_rss_file_kib": peaks["RssFile"]}


def main(argv: Optional[List[str]] = None) -> int:
    """Measure and print (and with ``--out``, write) the peak memory per tomogram count.

    Parameters
    ----------
    argv
        As in :func:`bench.memory_scale.main`.

    Returns
    -------
    int
        0.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/isonet2_many_tomograms"))
    parser.add_argument("--counts", default="2,50", help="tomogram counts, e.g. 2,50")
    parser.add_argument("--shape", default="32,96,96", help="z,y,x of each simulated tomogram")
    parser.add_argument("--subtomos", type=int, default=4, help="cubes per tomogram")
    parser.add_argument("--label", default="", help="a name for this run in the output")
    parser.add_argument("--out", type=Path, help="JSON file to write")
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.counts.split(",")]
    star = make_data(args.work, max(counts), args.shape)
    rows = []
    for count in counts:
        row = measure(star, count, args.work, args.subtomos)
        rows.append(row)
        print(f"{count:4d} tomograms: max RSS {row['max_rss_kib'] / 1024:7.1f} MiB, RssAnon "
              f"{row['peak_rss_anon_kib'] / 1024:7.1f} MiB, RssFile {row['peak_rss_file_kib'] / 1024:7.1f} "
              f"MiB, {row['seconds']} s", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"label": args.label, "shape": args.shape, "runs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
