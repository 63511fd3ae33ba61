"""Entry point of one measurement in a fresh process: ``python -m bench.worker KIND JSON``.

``KIND`` is ``train`` (:func:`bench.train_speed.measure_config`), ``predict``
(:func:`bench.predict_speed.measure_size`) or ``fit`` (:func:`bench.quality.fit_worker`); ``JSON`` holds the keyword arguments and
``result_path``, where the JSON result is written. Run by :func:`bench.common.run_worker`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path


def measure_function(kind: str):
    """The measuring function of a worker ``kind``."""
    if kind == "train":
        from bench.train_speed import measure_config
        return measure_config
    if kind == "predict":
        from bench.predict_speed import measure_size
        return measure_size
    if kind == "fit":
        from bench.quality import fit_worker
        return fit_worker
    raise ValueError(f"unknown worker kind {kind!r} (expected train, predict or fit)")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    kind, args = argv[0], json.loads(argv[1])
    result = measure_function(kind)(**args)
    Path(args["result_path"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
