"""Behaviour unchanged: the maps of a fixed-seed run of every step, bit for bit (issue 29).

On a machine of the recorded signature (CPU model and flags, torch, numpy, scipy, mrcfile) the digests must equal
``bench/results/fingerprint.json``: a change that alters any map at a fixed seed fails here until
it is re-recorded (``python -m bench.fingerprint --out bench/results/fingerprint.json``) with the
reason in its commit. Elsewhere two runs at the same seed must agree bit for bit.
"""
import json
from pathlib import Path

import torch

from bench.fingerprint import fingerprint, machine_signature

RECORD = Path(__file__).resolve().parents[2] / "bench" / "results" / "fingerprint.json"


def test_fixed_seed_maps_are_reproduced_bit_for_bit(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
        digests = fingerprint(tmp_path / "a")
        record = json.loads(RECORD.read_text())
        assert len(digests) == len(record["digests"]) == 26
        if record["signature"] == machine_signature():
            assert digests == record["digests"]
        else:
            assert fingerprint(tmp_path / "b") == digests
    finally:
        torch.set_num_threads(threads)
