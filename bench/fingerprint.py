"""The maps of a fixed-seed run of every step, as SHA-256 digests (``python -m bench.fingerprint``).

A refactoring that claims "behaviour unchanged" runs this before and after on one machine: the
same digests mean the same maps, bit for bit. The digests are of each map's data and voxel size
(headers carry dates) and depend on the CPU's arithmetic, so only runs of one machine compare
(the JSON names it: :func:`machine_signature`); ``bench/results/fingerprint.json`` is the record
that ``tests/core/test_fingerprint.py`` checks on a machine of the same signature. Steps:
simulate (2 tomograms, 32x64x64), prepare-star, deconv, make-mask, refine (1 epoch), predict,
denoise (1 epoch), predict of the denoiser.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import platform
import tempfile
from pathlib import Path
from typing import Dict, List

import mrcfile
import numpy as np
import torch

from isonet2core.cli.main import main as isonet2
from isonet2core.io.model_file import ModelFile

TRAIN = ["--arch", "unet-small", "--cube_size", "16", "--batch_size", "2", "--epochs", "1",
         "--number_subtomos", "4", "--seed", "0", "--device", "cpu", "--ncpus", "1",
         "--mixed_precision", "False"]


def _run(argv: List[str]) -> None:
    rc = isonet2([str(a) for a in argv])
    if rc != 0:
        raise RuntimeError(f"isonet2 {' '.join(map(str, argv))} exited {rc}")


def fingerprint(work: Path) -> Dict[str, str]:
    """Run every step in ``work``; the SHA-256 of every map and model weight written, by name."""
    data, star = work / "data", work / "tomograms.star"
    _run(["simulate", "-o", data, "--n_tomograms", "2", "--shape", "32,64,64", "--seed", "0"])
    _run(["prepare-star", "--even", data / "even", "--odd", data / "odd", "--star_name", star,
          "--defocus", "50000", "--tilt_min", "-60", "--tilt_max", "60"])
    _run(["deconv", star, "--output_dir", work / "deconv"])
    _run(["make-mask", star, "--output_dir", work / "mask"])
    _run(["refine", star, "--output_dir", work / "refine", *TRAIN])
    refined = sorted((work / "refine").glob("*_full.pt"))[0]
    _run(["predict", star, refined, "--output_dir", work / "corrected", "--device", "cpu",
          "--ncpus", "1"])
    _run(["denoise", star, "--output_dir", work / "denoise", *TRAIN])
    denoiser = sorted((work / "denoise").glob("*_full.pt"))[0]
    _run(["predict", star, denoiser, "--output_dir", work / "denoised", "--device", "cpu",
          "--ncpus", "1"])
    digests = {}
    for path in sorted(work.rglob("*.mrc")):
        with mrcfile.open(path, permissive=True) as mrc:   # the data and voxel size, not the
            h = hashlib.sha256(mrc.data.tobytes())          # header's date labels
            h.update(str(mrc.voxel_size).encode())
        digests[str(path.relative_to(work))] = h.hexdigest()
    for path in (refined, denoiser):
        weights = ModelFile.load(path).model_state
        h = hashlib.sha256()
        for name in sorted(weights):
            h.update(name.encode()); h.update(weights[name].numpy().tobytes())
        digests[str(path.relative_to(work)) + ":model_state"] = h.hexdigest()
    return digests


def machine_signature() -> str:
    """What the digests depend on besides the code: the CPU (model and instruction-set flags),
    torch, numpy, scipy and mrcfile versions."""
    cpu = ""
    try:
        info = Path("/proc/cpuinfo").read_text()
        model = next((l for l in info.splitlines() if l.startswith("model name")), "")
        flags = next((l for l in info.splitlines() if l.startswith("flags")), "")
        cpu = model.split(":", 1)[-1].strip() + " flags-sha1:" + hashlib.sha1(flags.encode()).hexdigest()[:12]
    except OSError:
        cpu = platform.processor() or platform.machine()
    import scipy
    return (f"{cpu}; torch {torch.__version__}; numpy {np.__version__}; scipy {scipy.__version__}; "
            f"mrcfile {mrcfile.__version__}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    parser.add_argument("--compare", type=Path, help="an earlier JSON of this machine: exit 1 on any difference")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        digests = fingerprint(Path(tmp))
    record = {"signature": machine_signature(), "digests": digests}
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    if args.compare is not None:
        before = json.loads(args.compare.read_text())["digests"]
        differ = sorted(k for k in set(before) | set(digests) if before.get(k) != digests.get(k))
        print(f"{len(digests)} digests, {len(differ)} differ" + "".join(f"\n  {k}" for k in differ))
        return 1 if differ else 0
    print(f"{len(digests)} digests written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
