"""Build ``isonet2core/simulation/data/structures.npz``, the atomic models of the realistic lamella
simulator (:mod:`isonet2core.simulation.lamella`), from the MDAnalysisTests source archive on PyPI.

Run once by a developer (nothing is downloaded while tests or the demo run):

    pip download --no-deps mdanalysistests==2.11.0 -d /tmp/mda
    python -m bench.assets.build_structures /tmp/mda/mdanalysistests-2.11.0.tar.gz

For each structure the first model's non-water, non-hydrogen atoms are kept: coordinates
centred on their mean, in 0.1 A units (int16), and the element (C, N, O, S, P; others are
mapped to the nearest of those by row). The file records the source archive and member.
"""
from __future__ import annotations

import bz2
import gzip
import io
import sys
import tarfile
from pathlib import Path

import numpy as np

#: (key, archive member under MDAnalysisTests/data/, what it is)
STRUCTURES = (
    ("3kpr", "mmcif/3KPR.pdb.gz", "3KPR, 10-chain complex (166 A)"),
    ("6msm", "6msm.pdb.bz2", "6MSM, 2-chain membrane transporter (CFTR, 133 A)"),
    ("3pwp", "mmcif/3PWP.pdb.gz", "3PWP, 5-chain TCR/pMHC complex (106 A)"),
    ("1bd2", "mmcif/1BD2.pdb.gz", "1BD2, 5-chain TCR/pMHC complex (113 A)"),
    ("19hc", "19hc.pdb.gz", "19HC, 2-chain nine-haem cytochrome c (79 A)"),
    ("1a28", "1a28.pdb.gz", "1A28, progesterone receptor LBD dimer (83 A)"),
    ("adk", "adk_closed.pdb", "4AKE/1AKE adenylate kinase, closed (47 A)"),
)
ELEMENTS = ("C", "N", "O", "S", "P")
_MAP = {"C": "C", "N": "N", "O": "O", "S": "S", "P": "P", "SE": "S", "FE": "S", "ZN": "S",
        "MG": "O", "CA": "S", "CL": "S", "NA": "O", "K": "S", "MN": "S", "CU": "S", "CO": "S"}


def _open(name: str, raw: bytes) -> str:
    if name.endswith(".gz"):
        raw = gzip.decompress(raw)
    elif name.endswith(".bz2"):
        raw = bz2.decompress(raw)
    return raw.decode("latin-1")


def parse_pdb(text: str):
    """Heavy atoms of the first model: ``(xyz (n, 3) float64 A, element codes (n,) uint8)``."""
    xyz, codes = [], []
    for line in io.StringIO(text):
        if line.startswith("ENDMDL"):
            break
        if not line.startswith(("ATOM", "HETATM")) or line[17:20] in ("HOH", "WAT", "SOL"):
            continue
        element = line[76:78].strip().upper() or line[12:14].strip().lstrip("0123456789").upper()
        if element in ("H", "D") or (not line[76:78].strip() and line[12:16].strip().startswith("H")):
            continue
        mapped = _MAP.get(element, _MAP.get(element[:1], "C"))
        xyz.append((float(line[30:38]), float(line[38:46]), float(line[46:54])))
        codes.append(ELEMENTS.index(mapped))
    return np.asarray(xyz), np.asarray(codes, dtype=np.uint8)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__)
        return 2
    archive = Path(argv[0])
    out = Path(__file__).resolve().parents[2] / "isonet2core" / "data" / "structures.npz"
    arrays, notes = {}, []
    with tarfile.open(archive) as tar:
        names = {m.name.split("MDAnalysisTests/data/", 1)[-1]: m for m in tar.getmembers()
                 if "MDAnalysisTests/data/" in m.name}
        for key, member, what in STRUCTURES:
            xyz, codes = parse_pdb(_open(member, tar.extractfile(names[member]).read()))
            xyz = xyz - xyz.mean(axis=0)
            arrays[f"{key}_xyz"] = np.round(xyz * 10.0).astype(np.int16)
            arrays[f"{key}_element"] = codes
            notes.append(f"{key}: {what}; {len(codes)} heavy atoms; {archive.name}:{member}")
            print(notes[-1])
    arrays["keys"] = np.array([k for k, _, _ in STRUCTURES])
    arrays["elements"] = np.array(ELEMENTS)
    arrays["source"] = np.array("\n".join(notes))
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
