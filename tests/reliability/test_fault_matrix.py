"""Bad input is refused early and clearly, by every command.

A table of faults x commands (deconv, make-mask, refine, denoise, predict). Each fault is
planted in the SECOND of two tomograms (or in the STAR / model file), and each case checks:

* exit code 2 and exactly one line on stderr, ``isonet2 <cmd>: error: ...``, naming the file
  or value at fault, no traceback;
* refused before long work: the output folder holds no file afterwards (not even the first,
  healthy tomogram's output; for refine/denoise no model file);
* nothing lost: every input (maps, STAR, model files) keeps its sha256.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import (
    ARCH,
    CUBE,
    PIXEL_A,
    SHAPE,
    assert_one_error_line,
    files_under,
    fingerprint,
    make_checkpoint,
    make_dataset,
    run_main,
)

from isonet2core.io import mrcio, star

COMMANDS = ("deconv", "make-mask", "refine", "denoise", "predict")
TRAINING = ("refine", "denoise")
TRAIN_OPTIONS = ["--arch", ARCH, "--cube_size", str(CUBE), "--epochs", "1", "--batch_size", "2",
                 "--number_subtomos", "2", "--device", "cpu", "--ncpus", "1",
                 "--mixed_precision", "False"]


class _Models(dict):
    """Model files made on first use (read-only; their checksums are checked too)."""

    SPECS = {
        "n2n-model": dict(method="isonet2-n2n"),
        "cube32": dict(method="isonet2-n2n", cube=32, epoch=1),
        "denoise-cube32": dict(method="n2n", cube=32, epoch=1),
        "medium": dict(method="isonet2-n2n", arch="unet-medium", epoch=1),
        "denoise-medium": dict(method="n2n", arch="unet-medium", epoch=1),
    }

    def __init__(self, root: Path):
        super().__init__()
        self.root = root

    def __contains__(self, key) -> bool:
        return key in self.SPECS

    def __missing__(self, key):
        path = make_checkpoint(self.root / f"{key}.pt", **self.SPECS[key])
        self[key] = path
        return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return _Models(tmp_path_factory.mktemp("models"))


def argv_for(command: str, star_path, out: Path, models, extra=()) -> list:
    if command == "deconv":
        return ["deconv", str(star_path), "--output_dir", str(out), "--ncpus", "1", *map(str, extra)]
    if command == "make-mask":
        return ["make-mask", str(star_path), "--output_dir", str(out), *map(str, extra)]
    if command == "predict":
        model, extra = (extra[0], extra[1:]) if extra and isinstance(extra[0], Path) \
            else (models["n2n-model"], extra)
        return ["predict", str(star_path), str(model), "--output_dir", str(out), "--device", "cpu",
                "--ncpus", "1", "--padding_factor", "1", *map(str, extra)]
    if command in TRAINING:
        return [command, str(star_path), "--output_dir", str(out), *TRAIN_OPTIONS, *map(str, extra)]
    raise AssertionError(command)


# --- the faults: plant(ds, tmp, models) -> (star path, extra argv, needles) ------------------
def _corrupt_header(ds, tmp, models):
    p = ds["even"][1]
    with open(p, "r+b") as fh:            # the map ID "MAP " at bytes 208..211
        fh.seek(208)
        fh.write(b"XXXX")
    return ds["star"], (), ["t2.mrc", "MAP"]


def _truncated(ds, tmp, models):
    p = ds["odd"][1]
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return ds["star"], (), ["t2.mrc", "truncated"]


def _not_mrc(ds, tmp, models):
    ds["even"][1].write_bytes(b"this is a text file, not a map\n" * 100)
    return ds["star"], (), ["t2.mrc"]


def _empty_file(ds, tmp, models):
    ds["odd"][1].write_bytes(b"")
    return ds["star"], (), ["t2.mrc"]


def _missing_map(ds, tmp, models):
    ds["odd"][1].unlink()
    return ds["star"], (), ["t2.mrc", "not found"]


def _missing_star(ds, tmp, models):
    return tmp / "nope.star", (), ["nope.star", "not found"]


def _star_text(ds, columns, rows):
    lines = ["data_global", "", "loop_"] + [f"_{c} #{i}" for i, c in enumerate(columns, 1)]
    lines += ["  ".join(map(str, r)) for r in rows]
    path = ds["root"] / "edited.star"
    path.write_text("\n".join(lines) + "\n")
    return path


def _star_missing_pixel_size(ds, tmp, models):
    rows = [(f"t{i}", ds["even"][i - 1], ds["odd"][i - 1]) for i in (1, 2)]
    path = _star_text(ds, [star.TOMO_NAME, star.TOMO_HALF1, star.TOMO_HALF2], rows)
    return path, (), ["edited.star", "pixel size"]


def _star_missing_maps(ds, tmp, models):
    path = _star_text(ds, [star.TOMO_NAME, star.PIXEL_SIZE], [("t1", 10.0), ("t2", 10.0)])
    return path, (), ["edited.star", "no map"]


def _star_wrong_type(ds, tmp, models):
    rows = [(f"t{i}", ds["even"][i - 1], ds["odd"][i - 1], 10.0, "20000" if i == 1 else "abc")
            for i in (1, 2)]
    path = _star_text(ds, [star.TOMO_NAME, star.TOMO_HALF1, star.TOMO_HALF2, star.PIXEL_SIZE,
                           star.DEFOCUS], rows)
    return path, (), ["edited.star", star.DEFOCUS, "abc"]


def _star_garbage(ds, tmp, models):
    path = ds["root"] / "garbage.star"
    path.write_bytes(bytes(range(256)) * 8)
    return path, (), ["garbage.star"]


def _halves_shape(ds, tmp, models):
    z, y, x = SHAPE
    mrcio.write_mrc(ds["odd"][1], np.random.default_rng(1).normal(size=(z, y, x - 4)), PIXEL_A)
    return ds["star"], (), ["t2.mrc", "shape"]


def _halves_pixel_size(ds, tmp, models):
    data, _ = mrcio.read_mrc(ds["odd"][1])
    mrcio.write_mrc(ds["odd"][1], data, 2 * PIXEL_A)
    return ds["star"], (), ["t2.mrc", "voxel size"]


def _nan_voxel(ds, tmp, models):
    data, _ = mrcio.read_mrc(ds["even"][1])
    data[0, 0, 0] = np.nan          # outside the central slices the normalisation looks at
    mrcio.write_mrc(ds["even"][1], data, PIXEL_A)
    return ds["star"], (), ["t2.mrc", "nan"]


def _inf_voxel(ds, tmp, models):
    data, _ = mrcio.read_mrc(ds["odd"][1])
    data[SHAPE[0] // 2, 5, 7] = np.inf
    mrcio.write_mrc(ds["odd"][1], data, PIXEL_A)
    return ds["star"], (), ["t2.mrc", "infinite"]


def _constant(ds, tmp, models):
    for half in ("even", "odd"):
        mrcio.write_mrc(ds[half][1], np.full(SHAPE, 3.0, np.float32), PIXEL_A)
    return ds["star"], (), ["t2.mrc", "constant"]


def _set_star(ds, column, value, row=1):
    table = star.TomogramsTable.read(ds["star"])
    table.set_value(row, column, value)
    table.write(ds["star"])
    return ds["star"]


def _tilt_reversed(ds, tmp, models):
    _set_star(ds, star.TILT_MIN, 50.0)
    _set_star(ds, star.TILT_MAX, -50.0)
    return ds["star"], (), ["tomograms.star", "tomogram t2", "tilt_min"]


def _tilt_beyond_90(ds, tmp, models):
    _set_star(ds, star.TILT_MAX, 120.0)
    return ds["star"], (), ["tomograms.star", "tomogram t2", "90"]


def _negative_pixel_size(ds, tmp, models):
    rows = [(f"t{i}", ds["even"][i - 1], ds["odd"][i - 1], 10.0 if i == 1 else -10.0) for i in (1, 2)]
    path = _star_text(ds, [star.TOMO_NAME, star.TOMO_HALF1, star.TOMO_HALF2, star.PIXEL_SIZE], rows)
    return path, (), ["edited.star", "pixel size", "-10"]


def _unknown_tomo_idx(ds, tmp, models):
    return ds["star"], ("--tomo_idx", "9"), ["rlnIndex 9"]


def _output_dir_is_a_file(ds, tmp, models):
    return ds["star"], (), ["out"]


def _small_tomogram(ds, tmp, models):
    for seed, half in enumerate(("even", "odd")):   # two different halves (identical ones are refused)
        mrcio.write_mrc(ds[half][1], np.random.default_rng(2 + seed).normal(size=(CUBE - 4, 40, 40)), PIXEL_A)
    return ds["star"], (), ["tomogram t2", "smaller than cube_size"]


def _model_not_a_checkpoint(ds, tmp, models):
    junk = tmp / "junk.pt"
    junk.write_bytes(b"PK\x03\x04 definitely not a model" * 50)
    return ds["star"], (junk,), ["junk.pt"]


def _model_foreign_torch_file(ds, tmp, models):
    import torch
    foreign = tmp / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)
    return ds["star"], (foreign,), ["foreign.pt", "not an isonet2core checkpoint"]


def _model_missing(ds, tmp, models):
    return ds["star"], (tmp / "absent.pt",), ["absent.pt", "not found"]


def _model2_other_cube(ds, tmp, models):
    return ds["star"], (models["n2n-model"], "--model2", str(models["cube32"])), ["cube32", "cube_size"]


def _resume_other_arch(ds, tmp, models):
    return ds["star"], ("--resume", "medium"), ["medium", "unet-medium"]


def _pretrained_other_cube(ds, tmp, models):
    return ds["star"], ("--pretrained_model", "cube32"), ["cube32", "cube_size"]


def _resume_not_a_checkpoint(ds, tmp, models):
    junk = tmp / "junk.pt"
    junk.write_bytes(b"\x00\x01garbage" * 100)
    return ds["star"], ("--resume", junk), ["junk.pt"]


ALL = COMMANDS
FAULTS = {
    "corrupt-header": (ALL, _corrupt_header),
    "truncated-mrc": (ALL, _truncated),
    "text-file-as-mrc": (ALL, _not_mrc),
    "empty-file-as-mrc": (ALL, _empty_file),
    "missing-map": (ALL, _missing_map),
    "missing-star": (ALL, _missing_star),
    "star-without-pixel-size": (ALL, _star_missing_pixel_size),
    "star-without-maps": (ALL, _star_missing_maps),
    "star-wrong-type": (ALL, _star_wrong_type),
    "star-binary-garbage": (ALL, _star_garbage),
    "star-negative-pixel-size": (ALL, _negative_pixel_size),
    "halves-different-shapes": (ALL, _halves_shape),
    "halves-different-pixel-sizes": (ALL, _halves_pixel_size),
    "nan-voxel": (ALL, _nan_voxel),
    "inf-voxel": (ALL, _inf_voxel),
    "constant-tomogram": (ALL, _constant),
    "tilt-min-above-max": (ALL, _tilt_reversed),
    "tilt-beyond-90": (ALL, _tilt_beyond_90),
    "unknown-tomo-idx": (ALL, _unknown_tomo_idx),
    "output-dir-is-a-file": (ALL, _output_dir_is_a_file),
    "tomogram-smaller-than-cube": (TRAINING, _small_tomogram),
    "resume-other-arch": (TRAINING, _resume_other_arch),
    "pretrained-other-cube": (TRAINING, _pretrained_other_cube),
    "resume-not-a-checkpoint": (TRAINING, _resume_not_a_checkpoint),
    "model-not-a-checkpoint": (("predict",), _model_not_a_checkpoint),
    "model-foreign-torch-file": (("predict",), _model_foreign_torch_file),
    "model-missing": (("predict",), _model_missing),
    "model2-other-cube": (("predict",), _model2_other_cube),
}
CASES = [pytest.param(cmd, fault, id=f"{cmd}-{fault}")
         for fault, (commands, _) in FAULTS.items() for cmd in commands]


class LongWorkStarted(BaseException):
    """Raised by the tripwire: the command began its long work (not an error the CLI catches)."""


@contextlib.contextmanager
def tripwire(monkeypatch):
    """Make the first step of every command's long work raise :class:`LongWorkStarted`."""
    def trip(*args, **kwargs):
        raise LongWorkStarted("long work started before the bad input was refused")
    import isonet2core.steps.deconv
    import isonet2core.steps.masking
    import isonet2core.steps.predict
    monkeypatch.setattr(isonet2core.steps.deconv, "deconvolve_file", trip)
    monkeypatch.setattr(isonet2core.steps.masking, "mask_file", trip)
    monkeypatch.setattr(isonet2core.steps.predict, "predict_file", trip)
    try:
        import isonet2core.training.trainer as trainer
    except ImportError:  # training not there yet
        trainer = None
    if trainer is not None:
        monkeypatch.setattr(trainer.Session, "run_epoch", trip)
    yield


@pytest.mark.parametrize("command, fault", CASES)
def test_bad_input_is_refused_early_and_clearly(command, fault, tmp_path, models, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    with warnings.catch_warnings():   # mrcfile's header statistics of NaN maps warn
        warnings.simplefilter("ignore", RuntimeWarning)
        star_path, extra, needles = FAULTS[fault][1](ds, tmp_path, models)
    out = tmp_path / "out"
    if fault == "output-dir-is-a-file":
        out.write_text("a file where the output folder should be\n")
    if command in TRAINING and extra and extra[1] in models:   # a model file by its key
        key = extra[1] if command == "refine" else f"denoise-{extra[1]}"
        extra = (extra[0], models[key])
        needles = [models[key].name] + needles[1:]
    argv = argv_for(command, star_path, out, models, extra)
    inputs = [ds["root"]] + [Path(a) for a in argv if Path(a).suffix == ".pt" and Path(a).is_file()]
    before = fingerprint(inputs)

    with tripwire(monkeypatch):
        rc, _, err = run_main(argv)

    assert rc == 2, err
    assert_one_error_line(err, *needles)
    if fault == "output-dir-is-a-file":
        assert out.is_file()
    else:
        assert files_under(out) == [], f"{command} wrote before refusing: {files_under(out)}"
    assert fingerprint(inputs) == before, "an input was modified"


def test_stderr_is_one_line_in_a_real_process(tmp_path):
    """The same contract seen from outside (what the Scipion plugin gets): a subprocess."""
    from reliability_helpers import run_cli
    ds = make_dataset(tmp_path / "data", n=1)
    ds["even"][0].write_bytes(b"garbage")
    result = run_cli(["make-mask", ds["star"], "--output_dir", tmp_path / "out"], timeout=120)
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "t1.mrc")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_the_tripwire_catches_long_work(command, tmp_path, models, monkeypatch):
    """With good input every command does reach its long work: the matrix above can fail."""
    monkeypatch.chdir(tmp_path)
    ds = make_dataset(tmp_path / "data")
    with tripwire(monkeypatch), pytest.raises(LongWorkStarted):
        run_main(argv_for(command, ds["star"], tmp_path / "out", models))
