"""Run an ``isonet2`` command whose atomic writes wait at chosen points (no timing races).

Usage: ``python pace.py SPEC isonet2-arguments...``, SPEC a JSON object:

* ``"match"``: only ``os.replace`` calls whose target name contains this text count (default
  ``""``: all);
* ``"barrier": [DIR, N]``: at the first counted replace, create ``DIR/<pid>`` and wait until
  ``DIR`` holds N entries (N processes meet there: each has read its inputs, none has written);
* ``"gate": FILE``: at the first counted replace, create ``FILE.reached`` and wait until
  ``FILE`` exists (the test acts while the command holds its locks and its temporary file);
* ``"delay": S``: sleep S seconds before every counted replace.

The wait happens just before ``os.replace``: the temporary file of the write is complete and
not yet in place.
"""
import json
import os
import sys
import time
from pathlib import Path


def install(spec: dict) -> None:
    real_replace = os.replace
    state = {"first": True}
    match = spec.get("match", "")

    def wait_for(condition, what: str) -> None:
        deadline = time.monotonic() + 300
        while not condition():
            if time.monotonic() > deadline:
                raise SystemExit(f"pace: gave up waiting for {what}")
            time.sleep(0.02)

    def replace(src, dst, *args, **kwargs):
        if match in os.path.basename(os.fspath(dst)):
            if state["first"]:
                state["first"] = False
                if "barrier" in spec:
                    folder, n = Path(spec["barrier"][0]), int(spec["barrier"][1])
                    (folder / str(os.getpid())).touch()
                    wait_for(lambda: len(list(folder.iterdir())) >= n, "the barrier")
                if "gate" in spec:
                    Path(spec["gate"] + ".reached").touch()
                    wait_for(lambda: os.path.exists(spec["gate"]), "the gate")
            time.sleep(float(spec.get("delay", 0)))
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace


if __name__ == "__main__":
    install(json.loads(sys.argv[1]))
    from isonet2core.cli.main import main

    sys.exit(main(sys.argv[2:]))
