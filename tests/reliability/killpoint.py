"""Run an ``isonet2`` command that SIGKILLs itself at a chosen file operation (no timing involved).

Usage: ``python killpoint.py KIND N isonet2-arguments...``

* ``replace N``: killed just before the N-th ``os.replace`` of the run (the temporary file of an
  atomic write is complete but not yet in place: MRC outputs, STAR rewrites, model files);
  ``replace:TEXT N`` counts only the replaces whose target name contains TEXT;
* ``write N``: killed in the middle of writing the data of the N-th MRC file (appended planes or
  placed blocks; its header and half of the bytes of its first block are on disk);
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
        from isonet2core.io import mrcio
        real_init, real_write = mrcio.MRCStream.__init__, mrcio.MRCStream.write

        def init(self, *args, **kwargs):
            real_init(self, *args, **kwargs)          # the header is written
            calls["count"] += 1
            self.killpoint = calls["count"] == n

        real_block = mrcio.MRCStream.write_block

        def die_half_way(self, planes):
            data = np.ascontiguousarray(planes, dtype=np.float32).tobytes()
            self._fh.write(data[: len(data) // 2])    # half of the first block of planes
            self._fh.flush()
            os.fsync(self._fh.fileno())
            _die()

        def write(self, planes):
            if not self.killpoint:
                return real_write(self, planes)
            die_half_way(self, planes)

        def write_block(self, z0, y0, block):         # predict places blocks (y bands)
            if not self.killpoint:
                return real_block(self, z0, y0, block)
            die_half_way(self, block)

        mrcio.MRCStream.__init__ = init
        mrcio.MRCStream.write = write
        mrcio.MRCStream.write_block = write_block
    elif kind == "step":
        from isonet2core.training import trainer

        real_loss = trainer.Session.loss

        def loss(self, batch):
            calls["count"] += 1
            if calls["count"] == n:
                _die()
            return real_loss(self, batch)

        trainer.Session.loss = loss
    else:
        raise SystemExit(f"unknown kill point kind {kind!r}")


if __name__ == "__main__":
    kind, n = sys.argv[1], int(sys.argv[2])
    install(kind, n)
    from isonet2core.cli.main import main

    sys.exit(main(sys.argv[3:]))
