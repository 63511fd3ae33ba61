"""Run an ``isonet2`` command that SIGKILLs itself at a chosen file operation (no timing involved).

Usage: ``python killpoint.py KIND N isonet2-arguments...``

* ``replace N``: killed just before the N-th ``os.replace`` of the run (the temporary file of an
  atomic write is complete but not yet in place: MRC outputs, STAR rewrites, model files);
  ``replace:TEXT N`` counts only the replaces whose target name contains TEXT;
* ``write N``: killed in the middle of writing the data of the N-th MRC file (header and half
  of the voxel bytes are on disk);
* ``step N``: killed when the N-th training step (refine/denoise) starts computing its loss.

The process exits by SIGKILL (return code -9) when the point is reached, like a job killed by
a scheduler or an out-of-memory killer; otherwise with the command's own exit code.
"""
import os
import signal
import sys

import numpy as np


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(kind: str, n: int) -> None:
    calls = {"count": 0}
    if kind.split(":")[0] == "replace":
        real_replace = os.replace
        match = kind.partition(":")[2]

        def replace(src, dst, *args, **kwargs):
            if match in os.path.basename(os.fspath(dst)):
                calls["count"] += 1
                if calls["count"] == n:
                    _die()
            return real_replace(src, dst, *args, **kwargs)

        os.replace = replace
    elif kind == "write":
        import mrcfile.mrcinterpreter as interp

        real_flush = interp.MrcInterpreter.flush

        def flush(self):
            if self._read_only:
                return real_flush(self)
            calls["count"] += 1
            if calls["count"] != n:
                return real_flush(self)
            data = np.ascontiguousarray(self.data).tobytes()
            self._iostream.seek(0)
            self._iostream.write(self.header)
            self._iostream.write(self.extended_header)
            self._iostream.write(data[: len(data) // 2])
            self._iostream.flush()
            os.fsync(self._iostream.fileno())
            _die()

        interp.MrcInterpreter.flush = flush
    elif kind == "step":
        from isonet2core.training import trainer

        real_loss = trainer._Session._loss

        def loss(self, batch):
            calls["count"] += 1
            if calls["count"] == n:
                _die()
            return real_loss(self, batch)

        trainer._Session._loss = loss
    else:
        raise SystemExit(f"unknown kill point kind {kind!r}")


if __name__ == "__main__":
    kind, n = sys.argv[1], int(sys.argv[2])
    install(kind, n)
    from isonet2core.cli.main import main

    sys.exit(main(sys.argv[3:]))
