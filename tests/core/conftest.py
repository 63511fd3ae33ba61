"""Fixtures shared by the core's training tests."""
import numpy as np
import pytest

from isonet2core.io import mrcio


@pytest.fixture(scope="module")
def halves(tmp_path_factory):
    """Even and odd half maps ``(24, 32, 32)`` at 10 A: one random signal plus independent noise."""
    d = tmp_path_factory.mktemp("halves")
    rng = np.random.default_rng(0)
    signal = rng.standard_normal((24, 32, 32)).astype(np.float32)
    paths = []
    for name in ("even", "odd"):
        p = d / f"{name}.mrc"
        mrcio.write_mrc(p, signal + 0.5 * rng.standard_normal(signal.shape), 10.0)
        paths.append(p)
    return tuple(paths)
