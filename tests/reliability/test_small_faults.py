"""Issue 28 item 10: the smaller faults. Each is refused before any work with one error line
naming the option, value or file (exit 2, nothing written, inputs unchanged)."""
from __future__ import annotations

import mrcfile
import numpy as np
import pytest
import torch
from reliability_helpers import (
    ARCH,
    CUBE,
    PIXEL_A,
    assert_one_error_line,
    files_under,
    fingerprint,
    make_checkpoint,
    make_dataset,
    run_cli,
    run_main,
)

from isonet2core.io import mrcio, star
from isonet2core.training.trainer import check_finite

TRAIN = ["--arch", ARCH, "--cube_size", str(CUBE), "--epochs", "1", "--device", "cpu"]


@pytest.fixture
def dataset(tmp_path):
    ds = make_dataset(tmp_path / "d")
    ds["before"] = fingerprint([ds["star"], *ds["even"], *ds["odd"]])
    return ds


def _unchanged(ds):
    assert fingerprint([ds["star"], *ds["even"], *ds["odd"]]) == ds["before"]


def _flat_second_tomogram(ds):
    """The second tomogram's halves become 2D images (1 z slice)."""
    for half in ("even", "odd"):
        mrcio.write_mrc(ds[half][1], np.random.default_rng(1).standard_normal((1, 40, 40)), PIXEL_A)
    ds["before"] = fingerprint([ds["star"], *ds["even"], *ds["odd"]])


@pytest.mark.parametrize("command", ["deconv", "make-mask", "predict"])
def test_a_2d_mrc_is_refused_naming_the_file(command, dataset, tmp_path):
    _flat_second_tomogram(dataset)
    out = tmp_path / "out"
    argv = {"deconv": ["deconv", dataset["star"], "--output_dir", out],
            "make-mask": ["make-mask", dataset["star"], "--output_dir", out],
            "predict": ["predict", dataset["star"], make_checkpoint(tmp_path / "m.pt"), "--output_dir", out,
                        "--device", "cpu"]}[command]
    rc, _, err = run_main(argv)
    assert rc == 2
    assert_one_error_line(err, str(dataset["even"][1]), "1x40x40", "not a tomogram")
    _unchanged(dataset)
    assert files_under(out) == []


@pytest.mark.parametrize("option, value, needle", [
    ("--learning_rate", "inf", "--learning_rate/--learning-rate: 'inf' is not a finite number"),
    ("--learning_rate", "nan", "'nan' is not a finite number"),
    ("--mw_weight", "-inf", "--mw_weight"),
    ("--seed", "-1", "seed must be 0 or more, got -1"),
    ("--epoch", "3", "isonet2 refine: error: unrecognized arguments: --epoch 3"),
    ("--bogus", "3", "isonet2 refine: error: unrecognized arguments: --bogus 3"),
])
def test_bad_training_options_are_refused_before_training(option, value, needle, dataset, tmp_path):
    """--learning_rate inf was accepted and failed mid-training; --seed -1 failed late without
    naming the option; --epoch was taken for --epochs (argparse's prefix matching); an unknown
    option was reported without the subcommand."""
    out = tmp_path / "out"
    rc, _, err = run_main(["refine", dataset["star"], "--output_dir", out, *TRAIN, option, value])
    assert rc == 2
    assert_one_error_line(err, needle)
    _unchanged(dataset)
    assert files_under(out) == []


def test_the_nan_hint_names_a_learning_rate_pair_that_is_accepted():
    """The advice after a non-finite float32 loss must be a command line the checks accept: a
    lower --learning_rate alone was refused (learning_rate_min defaults to 3e-4)."""
    with pytest.raises(FloatingPointError) as info:
        check_finite(torch.tensor([float("nan"), 1.0, 1.0]), 2, 5, None)
    message = str(info.value)
    assert "--learning_rate 1e-4 --learning_rate_min 1e-4" in message
    from isonet2core.config import TrainConfig
    TrainConfig(learning_rate=1e-4, learning_rate_min=1e-4).validate()


def test_a_simulation_too_large_for_memory_is_refused_before_any_file(tmp_path):
    """simulate --shape 100000,100000,100000 ended in a MemoryError traceback."""
    out = tmp_path / "big"
    result = run_cli(["simulate", "--shape", "100000,100000,100000", "--output_dir", out])
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "100000x100000x100000", "PiB of memory", "--shape")
    assert not out.exists()


def test_a_z_crop_that_leaves_nothing_is_refused(dataset, tmp_path):
    """make-mask --z_crop 0.99 wrote an empty mask and exited 0."""
    out = tmp_path / "masks"
    rc, _, err = run_main(["make-mask", dataset["star"], "--output_dir", out, "--z_crop", "0.99"])
    assert rc == 2
    assert_one_error_line(err, "tomogram t1", "z_crop 0.99", "the mask would be empty")
    _unchanged(dataset)
    assert files_under(out) == []
    rc, _, err = run_main(["make-mask", dataset["star"], "--output_dir", out, "--z_crop", "0.8"])
    assert rc == 0, err
    mask = mrcio.read_mrc(star.TomogramsTable.read(dataset["star"]).path(0, star.MASK))[0]
    assert 0 < mask.mean() and not mask[:6].any() and not mask[-6:].any()


def test_a_negative_header_pixel_size_is_named(tmp_path):
    """prepare-star said 'the header has no pixel size (0.0)' of a header that says -5 A."""
    for half in ("even", "odd"):
        (tmp_path / half).mkdir()
        with mrcfile.new(tmp_path / half / "t.mrc") as m:
            m.set_data(np.random.default_rng(0).standard_normal((20, 24, 24)).astype(np.float32))
            m.voxel_size = -5.0
    rc, _, err = run_main(["prepare-star", "--even", tmp_path / "even", "--odd", tmp_path / "odd",
                           "--star_name", tmp_path / "t.star"])
    assert rc == 2
    assert_one_error_line(err, "t.mrc", "no positive pixel size (-5 A)", "--pixel_size")
    assert not (tmp_path / "t.star").exists()
