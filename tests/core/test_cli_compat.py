"""The official IsoNet2's command-line spellings (python-fire rules) through our parser."""
import pytest

from isonet2core.cli import compat
from isonet2core.cli.common import CLIError
from isonet2core.cli.main import build_parser, main


def parse(command, *tokens):
    parser = build_parser(command)
    sub = next(a for a in parser._subparsers._group_actions)
    argv = compat.official_argv(command.replace("_", "-"), list(tokens), sub.choices[command])
    return parser.parse_args([command] + argv)


def test_single_letter_options_are_the_official_argument_with_that_letter():
    args = parse("prepare_star", "-e", "tomos/even", "-o", "tomos/odd", "-p", "10.8")
    assert (args.even, args.odd, args.pixel_size) == ("tomos/even", "tomos/odd", 10.8)
    args = parse("refine", "tomograms.star", "-o", "maps", "--g", "0")
    assert args.output_dir == "maps" and args.gpuID == "0"
    args = parse("deconv", "tomograms.star", "-o=deconv", "--d", "0.5")
    assert args.output_dir == "deconv" and args.deconvstrength == 0.5
    # predict has --output_dir and --output_prefix: -o is ambiguous there, as in the official
    with pytest.raises(CLIError, match="--output_dir, --output_prefix"):
        parse("predict", "tomograms.star", "m.pt", "-o", "corrected")


def test_an_ambiguous_letter_is_refused_naming_the_candidates(capsys):
    with pytest.raises(CLIError, match="--method, --mw_weight, --mixed_precision"):
        parse("refine", "tomograms.star", "-m", "isonet2")
    # through the command: one line, exit 2, before any work
    assert main(["refine", "tomograms.star", "-m", "isonet2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ambiguous" in err[0] and err[0].startswith("isonet2 refine: error")


def test_bare_options_mean_true_and_no_prefix_means_false():
    args = parse("refine", "tomograms.star", "--resume", "--with_preview")
    assert args.resume is True and args.with_preview is True
    args = parse("refine", "tomograms.star", "--nowith_preview", "--epochs", "3")
    assert args.with_preview is False and args.epochs == 3
    args = parse("refine", "tomograms.star", "--mixed_precision=False", "--cube-size", "64")
    assert args.mixed_precision is False and args.cube_size == 64


def test_values_and_unknown_options_are_left_alone(capsys):
    assert compat.official_argv("prepare-star", ["--tilt_min", "-60", "--defocus", "[1,2]"],
                                build_parser("prepare-star")._subparsers._group_actions[0]
                                .choices["prepare-star"]) == ["--tilt_min", "-60", "--defocus",
                                                              "[1,2]"]
    assert main(["refine", "tomograms.star", "--no_such_option", "1"]) == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_official_options_of_refine_denoise_and_predict_are_accepted():
    args = parse("refine", "t.star", "--prev_tomo_idx", "2-3", "--apply_mw_x1", "False",
                 "--noise_mode", "nofilter", "--mw_weight", "-1", "--bfactor", "-50",
                 "--loss_func", "FSC")
    assert args.prev_tomo_idx == [2, 3] and args.apply_mw_x1 is False
    assert (args.noise_mode, args.mw_weight, args.bfactor, args.loss_func) == \
        ("nofilter", -1.0, -50.0, "FSC")
    args = parse("denoise", "t.star", "--prev_tomo_idx", "1")
    assert args.prev_tomo_idx == [1] and args.output_dir == "denoise"
    args = parse("predict", "t.star", "m.pt", "--output_prefix", "ep10", "--save_slices", "False")
    assert args.output_prefix == "ep10" and args.save_slices is False
    args = parse("deconv", "t.star", "--snrfalloff", "0")
    assert args.snrfalloff == 0.0
