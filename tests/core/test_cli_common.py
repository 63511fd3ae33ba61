"""The command-line layer: IsoNet2 spellings, True/False values, lists, errors -> exit 2."""
import argparse
import shutil
import subprocess
import sys

import pytest

from isonet2core.cli import common
from isonet2core.cli import main as cli_main
from isonet2core.cli.main import main


def _parser():
    p = argparse.ArgumentParser()
    common.add_option(p, "pixel_size", type=common.none_or(float), default="auto", help="pixel size")
    common.add_option(p, "with_preview", type=common.parse_bool, default=False, help="preview")
    common.add_option(p, "defocus", type=common.float_list, default="10000", help="defocus")
    common.add_option(p, "gpuID", default=None, aliases=("--gpu_id",), help="gpus")
    common.add_star_argument(p)
    return p


def test_both_spellings_and_aliases():
    p = _parser()
    assert p.parse_args(["--pixel_size", "5.4"]).pixel_size == 5.4
    assert p.parse_args(["--pixel-size", "5.4"]).pixel_size == 5.4
    assert p.parse_args(["--with-preview", "True"]).with_preview is True
    assert p.parse_args(["--gpu_id", "0,1"]).gpuID == "0,1"
    assert p.parse_args(["--gpuID", "0"]).gpuID == "0"


def test_defaults_go_through_the_converters():
    args = _parser().parse_args([])
    assert args.pixel_size is None and args.defocus == (10000.0,) and args.with_preview is False


@pytest.mark.parametrize("text, value", [("True", True), ("False", False), ("true", True),
                                         ("0", False), ("1", True), ("yes", True), ("no", False)])
def test_booleans_take_true_false_values(text, value):
    assert _parser().parse_args(["--with_preview", text]).with_preview is value


def test_bare_boolean_flag_means_true():
    assert _parser().parse_args(["--with_preview"]).with_preview is True


def test_bad_boolean():
    with pytest.raises(argparse.ArgumentTypeError, match="True or False.*'maybe'"):
        common.parse_bool("maybe")


@pytest.mark.parametrize("text, value", [("[30000,32000]", (30000.0, 32000.0)),
                                         ("30000,32000", (30000.0, 32000.0)),
                                         ("(1; 2 ,3)", (1.0, 2.0, 3.0)),
                                         ("30000", (30000.0,)),
                                         ("[5]", (5.0,))])
def test_float_lists(text, value):
    assert common.float_list(text) == value
    assert _parser().parse_args(["--defocus", text]).defocus == value


def test_bad_lists():
    with pytest.raises(argparse.ArgumentTypeError, match="'a,b'"):
        common.float_list("a,b")
    with pytest.raises(argparse.ArgumentTypeError, match="at least one"):
        common.float_list("[]")
    assert common.int_list("[0,1]") == (0, 1)
    with pytest.raises(argparse.ArgumentTypeError, match="'0.5'"):
        common.int_list("0.5")


@pytest.mark.parametrize("text", ["None", "none", "auto", ""])
def test_none_or(text):
    assert common.none_or(float)(text) is None
    assert common.none_or(float)("2.5") == 2.5


def test_index_selection():
    assert common.index_selection("1,3,5-7") == [1, 3, 5, 6, 7]
    assert common.index_selection("[2,4]") == [2, 4]
    for empty in (None, "None", "all", ""):
        assert common.index_selection(empty) is None
    with pytest.raises(argparse.ArgumentTypeError, match="'5-3'"):
        common.index_selection("5-3")
    with pytest.raises(argparse.ArgumentTypeError, match="'x'"):
        common.index_selection("1,x")


def test_star_argument_positional_or_option():
    p = _parser()
    assert common.star_path(p.parse_args(["tomograms.star"])) == "tomograms.star"
    assert common.star_path(p.parse_args(["--star_file", "a.star"])) == "a.star"
    with pytest.raises(common.CLIError, match="STAR file is required"):
        common.star_path(p.parse_args([]))


def test_help_text_on_every_prepare_star_option():
    parser = cli_main.build_parser("prepare-star")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    actions = [a for a in sub.choices["prepare-star"]._actions if a.option_strings and a.dest != "help"]
    assert len(actions) >= 15
    for action in actions:
        assert action.help and "(default:" in action.help, action.option_strings


def _one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_unknown_option_exits_2_with_one_line(capsys):
    assert main(["prepare_star", "--even", "E", "--odd", "O", "--no_such_option", "1"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "--no_such_option" in line


def test_bad_option_value_exits_2_with_one_line(capsys):
    assert main(["prepare-star", "--full", "F", "--create_average", "maybe"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "create_average" in line and "maybe" in line
    assert main(["prepare-star", "--full", "F", "--defocus", "abc"]) == 2
    assert "'abc'" in _one_line(capsys.readouterr().err)


def test_unknown_command_exits_2_with_one_line(capsys):
    assert main(["refine_everything", "tomograms.star"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "unknown command 'refine_everything'" in line and "prepare-star" in line


def test_errors_in_a_command_exit_2_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ISONET2_DEBUG", raising=False)
    missing = tmp_path / "nowhere"
    assert main(["prepare-star", "--full", str(missing)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert line.startswith("isonet2 prepare-star: error:") and str(missing) in line
    monkeypatch.setenv("ISONET2_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["prepare-star", "--full", str(missing)])


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "prepare-star" in capsys.readouterr().out


def test_version(capsys):
    assert main(["--version"]) == 0
    assert "isonet2core" in capsys.readouterr().out


def test_version_and_help_import_no_subcommand_module():
    """`isonet2 --version` must stay instant: no torch, no subcommand module loaded."""
    code = ("import sys; from isonet2core.cli.main import main\n"
            "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "main([])\n"
            "loaded = [m for m in sys.modules if m == 'torch' or m.startswith('isonet2core.cli.')"
            " and m not in ('isonet2core.cli.main', 'isonet2core.cli.common')]\n"
            "print(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_default_loss_and_precision_options_per_command():
    """One default per method (config.DEFAULT_LOSS_FUNC): refine FSC, denoise FSC+L2; the
    config built without a loss resolves it the same way; precision options reach the config."""
    from isonet2core.cli import denoise, predict, refine, train_common
    from isonet2core.config import TrainConfig

    def parse(module, argv):
        p = argparse.ArgumentParser()
        module.add_arguments(p)
        return p.parse_args(argv)

    r = parse(refine, ["t.star"])
    d = parse(denoise, ["t.star", "--amp_dtype", "float16", "--compile_model"])
    assert (r.loss_func, d.loss_func) == ("FSC", "FSC+L2")
    assert TrainConfig(method="n2n").loss_func == "FSC+L2"
    assert TrainConfig(method="isonet2").loss_func == "FSC"
    cfg = TrainConfig(method="n2n", **train_common.train_settings(d, "n2n"))
    assert (cfg.loss_func, cfg.amp_dtype, cfg.compile_model) == ("FSC+L2", "float16", True)
    assert (r.amp_dtype, r.compile_model) == ("auto", False)
    pr = parse(predict, ["t.star", "m.pt", "--amp_dtype", "bfloat16"])
    assert (pr.amp_dtype, pr.compile_model) == ("bfloat16", False)
    with pytest.raises(SystemExit):
        parse(refine, ["t.star", "--amp_dtype", "float64"])


def test_a_training_whose_loss_stops_being_finite_exits_2_with_one_line(halves, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ISONET2_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)
    for name, path in zip(("even", "odd"), halves):      # prepare-star reads one folder per half
        (tmp_path / name).mkdir()
        shutil.copy(path, tmp_path / name / "tomo.mrc")
    assert main(["prepare-star", "--even", "even", "--odd", "odd", "--pixel_size", "10",
                 "--number_subtomos", "4"]) == 0
    capsys.readouterr()
    assert main(["denoise", "tomograms.star", "--cube_size", "16", "--batch_size", "2", "--epochs", "1",
                 "--learning_rate", "1e10", "--learning_rate_min", "1e10", "--mixed_precision", "False",
                 "--device", "cpu", "--ncpus", "1", "--output_dir", "den", "--with_predict", "False"]) == 2
    err = capsys.readouterr().err      # the run's log and progress lines, and the error in one line
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("isonet2 denoise: error:")]
    assert len(errors) == 1 and errors[0].startswith("isonet2 denoise: error: epoch 1, step 2: the loss is not finite")
    assert not list((tmp_path / "den").glob("*.pt"))
