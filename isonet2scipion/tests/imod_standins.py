"""Stand-ins for the IMOD programs that scipion-em-imod's CTF correction and tomogram
reconstruction run (``newstack``, ``ctfphaseflip``, ``tilt``, ``trimvol``; ``etomo`` only for
the plugin's installation check), so that those upstream protocols run for real in a test.

Each reads the arguments scipion-em-imod passes (``imod/protocols/protocol_base.py``,
``protocol_ctfCorrection.py``, ``protocol_tomoReconstruction.py``, scipion-em-imod 3.9.1) and
writes the file the real program writes there, in its layout:

* ``newstack -input I -output O [-exclude 1-based list -fromone]``: the stack without the
  excluded views (the re-stacking of a tilt series with excluded views); a transform (``-xform``)
  or a binning other than 1 is refused (not needed here);
* ``ctfphaseflip -InputStack I -OutputFileName O -AngleFile T -DefocusFile D ...``: a copy of the
  stack (the phase flip itself is left out), after checking, as the real program does, that the
  angle file has one angle per view and that the defocus file exists;
* ``tilt -InputProjections I -OutputFile O -TILTFILE T -THICKNESS n -MODE m -PERPENDICULAR ...``:
  a weighted back-projection (the core simulator's, tilt axis y) of ``n`` slices, written as
  IMOD writes a ``-PERPENDICULAR`` reconstruction (sections along y: ``(ny, n, nx)``), mode 1
  (16-bit integers, scaled) or 2 (float);
* ``trimvol -rx [-nx w] I O``: the volume rotated about x to ``(n, ny, nx)`` (z, y, x), cut to
  ``w`` columns in x when given.

The test writes a folder ``bin/`` of small shell scripts calling this module (``python -m
isonet2scipion.tests.imod_standins PROGRAM ARGS``) and points IMOD's plugin at it (``IMOD_HOME``).
Every call is appended to ``calls.jsonl`` beside ``bin/`` (program and arguments), for the test.
"""
import json
import math
import os
import shlex
import sys
from pathlib import Path

import mrcfile
import numpy as np

PROGRAMS = ("newstack", "ctfphaseflip", "tilt", "trimvol", "etomo")
_NO_VALUE = {"-fromone", "-PERPENDICULAR", "-AdjustOrigin"}


def parse(tokens):
    """``{option: value}`` of IMOD's ``-Option value`` pairs as scipion-em-imod joins them
    (``True`` for the value-less options; a value may start with ``-``, as ``-antialias -1``)."""
    options, i = {}, 0
    while i < len(tokens):
        if tokens[i] in _NO_VALUE:
            options[tokens[i]] = True
            i += 1
        else:
            options[tokens[i]] = tokens[i + 1] if i + 1 < len(tokens) else True
            i += 2
    return options


def _read(path):
    with mrcfile.open(path, permissive=True) as mrc:
        return np.asarray(mrc.data).copy(), float(mrc.voxel_size.x)


def _write(path, data, voxel_size):
    with mrcfile.new(path, overwrite=True) as mrc:
        mrc.set_data(data)
        mrc.voxel_size = voxel_size


def newstack(opts):
    if "-xform" in opts or str(opts.get("-bin", "1")) != "1":
        raise SystemExit("newstack stand-in: transforms and binning are not simulated")
    data, apix = _read(opts["-input"])
    keep = np.ones(len(data), bool)
    if "-exclude" in opts:
        base = 1 if opts.get("-fromone") else 0
        keep[[int(v) - base for v in opts["-exclude"].split(",")]] = False
    _write(opts["-output"], np.ascontiguousarray(data[keep]), apix)


def ctfphaseflip(opts):
    data, apix = _read(opts["-InputStack"])
    angles = np.loadtxt(opts["-AngleFile"], ndmin=1)
    if len(angles) != len(data):
        raise SystemExit(f"ctfphaseflip stand-in: {len(angles)} angles for {len(data)} views")
    if not os.path.exists(opts["-DefocusFile"]):
        raise SystemExit(f"ctfphaseflip stand-in: no defocus file {opts['-DefocusFile']}")
    _write(opts["-OutputFileName"], data, apix)


def tilt(opts):
    from isonet2core.simulation.simulate import projection_matrix, weighted_back_projection

    images, apix = _read(opts["-InputProjections"])
    images = images.astype(np.float32)
    angles = np.loadtxt(opts["-TILTFILE"], ndmin=1)
    if len(angles) != len(images):
        raise SystemExit(f"tilt stand-in: {len(angles)} angles for {len(images)} views")
    n, ny, nx = images.shape
    shape = (int(opts["-THICKNESS"]), ny, nx)
    matrix = projection_matrix(shape, angles, n_u=nx)
    step = math.radians(float(np.ptp(angles)) / max(n - 1, 1))
    volume = weighted_back_projection(images, matrix, shape, np.full(n, step, np.float32))
    volume = np.ascontiguousarray(volume.transpose(1, 0, 2))      # -PERPENDICULAR: (y, z, x)
    if str(opts.get("-MODE", "2")) == "1":                        # 16-bit, scaled as -SCALE would
        volume = np.clip(volume * (300.0 / (volume.std() or 1.0)), -32767, 32767).astype(np.int16)
    _write(opts["-OutputFile"], volume, apix)


def trimvol(args):
    """``args``: ``-rx [-nx w] input output``."""
    if "-rx" not in args:
        raise SystemExit("trimvol stand-in: only -rx is simulated")
    data, apix = _read(args[-2])
    data = np.ascontiguousarray(np.rot90(data, k=1, axes=(0, 1)))  # (y, z, x) -> (z, y, x)
    width = int(args[args.index("-nx") + 1]) if "-nx" in args else 0
    if width:
        start = (data.shape[2] - width) // 2
        data = np.ascontiguousarray(data[:, :, start:start + width])
    _write(args[-1], data, apix)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    program, args = argv[0], argv[1:]
    log = Path(os.environ.get("IMOD_STANDIN_LOG", Path(__file__).with_name("calls.jsonl")))
    with open(log, "a") as f:
        f.write(json.dumps({"program": program, "args": args}) + "\n")
    if program == "etomo":
        raise SystemExit("etomo stand-in: the GUI is not simulated")
    if program == "trimvol":
        trimvol(args)
    else:
        {"newstack": newstack, "ctfphaseflip": ctfphaseflip, "tilt": tilt}[program](parse(args))
    return 0


def install(home, python=sys.executable):
    """Write an IMOD_HOME at ``home`` whose ``bin/`` holds the stand-ins (shell scripts calling
    this module with ``python``) and an empty ``IMOD-linux.sh`` (scipion-em-imod sources it
    before a program found in ``IMOD_HOME/bin``); returns the call log's path."""
    home = Path(home)
    (home / "bin").mkdir(parents=True, exist_ok=True)
    (home / "IMOD-linux.sh").write_text("# stand-in IMOD environment\n")
    log = home / "calls.jsonl"
    for program in PROGRAMS:
        script = home / "bin" / program
        script.write_text(f"#!/bin/sh\nIMOD_STANDIN_LOG={shlex.quote(str(log))} exec "
                          f"{shlex.quote(str(python))} -m isonet2scipion.tests.imod_standins "
                          f"{program} \"$@\"\n")
        script.chmod(0o755)
    return log


def calls(log):
    """The logged calls: ``[(program, [argument, ...])]``."""
    if not Path(log).exists():
        return []
    with open(log) as f:
        return [(c["program"], c["args"]) for c in map(json.loads, f)]


if __name__ == "__main__":
    sys.exit(main())
