"""The demo (python -m isonet2scipion.demo): the quick run end to end, and its refusals.

The quick run (session fixture ``quick_demo`` in conftest) is the scripted workflow of
isonet2scipion.examples.scripted_workflow in a self-contained Scipion folder: simulated data,
imports (tomograms full/even/odd, tilt series, IMOD CTF), make mask, refine, predict, report.
"""
import json
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from isonet2scipion.examples.scripted_workflow import find_inputs


def _demo(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "isonet2scipion.demo", *args],
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def test_quick_demo_runs_the_chain(quick_demo):
    result, folder = quick_demo
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for label in ("import full tomograms", "import even tomograms", "import odd tomograms",
                  "import tilt series", "import IMOD CTF", "isonet2 - make mask",
                  "isonet2 - refine", "isonet2 - predict"):
        assert label in out, label
    assert "Pearson raw" in out and "wedge FSC raw" in out
    # progress streamed while the protocols ran (at least their final state)
    assert "isonet2 - refine: Training: epoch 1/1, loss " in out
    assert "isonet2 - predict: Predicted 1 of 1 tomograms" in out
    assert (folder / "report" / "report.html").stat().st_size > 1000
    for png in ("tomo_001_orthoslices.png", "tomo_001_fourier.png", "training_loss.png",
                "tomo_001_fsc_ground_truth.png"):
        assert (folder / "report" / png).stat().st_size > 1000, png
    quality = json.loads((folder / "quality.json").read_text())
    assert [q["name"] for q in quality] == ["tomo_001"]
    assert all(-1.0 <= q[k] <= 1.0 for q in quality for k in q if k != "name")
    # the corrected tomogram printed exists, has the input's grid and is not the input
    corrected = [line.strip() for line in out.splitlines() if line.strip().endswith("_corrected.mrc")]
    assert len(corrected) == 1
    path = folder.parent / corrected[0] if not corrected[0].startswith("/") else corrected[0]
    with mrcfile.open(path, permissive=True) as mrc:
        data = np.asarray(mrc.data)
        assert data.shape == (32, 64, 64)
        assert float(mrc.voxel_size.x) == pytest.approx(10.0)
    raw = mrcfile.read(folder / "data" / "even" / "tomo_001.mrc")
    assert np.isfinite(data).all() and not np.allclose(data, raw)


def test_quick_demo_reruns_into_its_own_folder(quick_demo, tmp_path):
    """A folder the demo made is cleared and reused; a foreign non-empty folder is refused."""
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.txt").write_text("keep me")
    result = _demo("--quick", "--output", str(foreign))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "not made by the demo" in result.stderr
    assert (foreign / "thesis.txt").read_text() == "keep me"


@pytest.mark.parametrize("args,expected", [
    (["--cube_size", "40"], "multiple of 16"),
    (["--epochs", "0"], "positive integer"),
    (["--arch", "unet-huge"], "invalid choice"),
    (["--gpu", "a,b"], "GPU ids"),
    (["--data", "/nonexistent/isonet2_data"], "data folder not found"),
])
def test_bad_arguments_are_one_line_exit_2(tmp_path, args, expected):
    result = _demo(*args, "--output", str(tmp_path / "d"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert not (tmp_path / "d").exists()


def _write(path, shape=(16, 16, 16)):
    path.parent.mkdir(parents=True, exist_ok=True)
    with mrcfile.new(str(path)) as mrc:
        mrc.set_data(np.zeros(shape, np.float32))
        mrc.voxel_size = 7.0


def test_find_inputs_layouts(tmp_path):
    for half in ("even", "odd"):
        _write(tmp_path / half / "TS_1.mrc")
    layout = find_inputs(tmp_path)
    assert layout.names == ("TS_1",) and layout.has_halves and layout.full is None
    assert layout.ctf is None
    # CTF files need the tilt series they attach to
    (tmp_path / "ctf").mkdir()
    (tmp_path / "ctf" / "TS_1.defocus").write_text("1 1 0 0 3000\n")
    with pytest.raises(ValueError, match="tilt_series/<name>.mrc"):
        find_inputs(tmp_path)
    _write(tmp_path / "tilt_series" / "TS_1.mrc", (3, 16, 16))
    (tmp_path / "tilt_series" / "TS_1.tlt").write_text("-3\n0\n3\n")
    assert find_inputs(tmp_path).ctf == tmp_path / "ctf"
    _write(tmp_path / "odd" / "TS_2.mrc")
    with pytest.raises(ValueError, match="unpaired: TS_2"):
        find_inputs(tmp_path)


def test_find_inputs_refusals(tmp_path):
    with pytest.raises(FileNotFoundError):
        find_inputs(tmp_path / "missing")
    with pytest.raises(ValueError, match="no tomograms"):
        find_inputs(tmp_path)
    _write(tmp_path / "even" / "a.mrc")
    with pytest.raises(ValueError, match="both even/ and odd/"):
        find_inputs(tmp_path)


def test_scripted_workflow_refuses_bad_data_in_one_line(tmp_path, capsys):
    from isonet2scipion.examples.scripted_workflow import main
    assert main(["my_project", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "data folder not found" in err[0]
