"""One source for every option: the config dataclasses. The CLI parsers and the protocol forms
are generated from them (isonet2core.cli.common.add_config_options,
isonet2scipion.protocols.core_options.catalogue); these tests check the generators, on the real
configs and on an option added to a config of their own."""
import argparse
import dataclasses
from typing import Literal, Optional

import pytest

from isonet2core.cli import common, deconv, make_mask, predict, refine
from isonet2core.config import (
    DEFAULT_LOSS_FUNC,
    REFINE_ONLY,
    DeconvConfig,
    MaskConfig,
    PredictConfig,
    TrainConfig,
    option,
    options_of,
)
from isonet2scipion.protocols import core_options as co


def _parser(module):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser


@pytest.mark.parametrize("options, config, module, excluded", [
    (co.DECONV_OPTIONS, DeconvConfig, deconv, {"ncpus"}),
    (co.MASK_OPTIONS, MaskConfig, make_mask, set()),
    (co.TRAIN_OPTIONS + co.REFINE_OPTIONS, TrainConfig, refine, set()),
    (co.PREDICT_OPTIONS, PredictConfig, predict, {"output_prefix"})],
    ids=["deconv", "make_mask", "refine", "predict"])
def test_every_config_option_is_in_the_command_and_the_form(options, config, module, excluded):
    """Each option of the config is a command option and (but the plugin's own) a form
    parameter whose default is the command's default."""
    parsed = vars(_parser(module).parse_args([]))
    form = {opt.field.name: opt for opt in options}
    assert set(form) == {o.name for o in options_of(config)} - excluded
    for field in options_of(config):
        core = parsed[field.flag]
        if field.name == "loss_func":
            assert core == DEFAULT_LOSS_FUNC["isonet2-n2n"]
        elif isinstance(field.default, tuple):
            assert tuple(core) == field.default
        else:
            assert core == field.default, field.name
        if field.name in excluded:
            continue
        opt = form[field.name]
        assert opt.flag == field.flag
        if isinstance(opt, co.CtfCorrectedOption):   # auto: the tomograms' flag
            assert opt.choices[opt.default].startswith("auto")
            continue
        shown = opt.values[opt.default] if opt.values is not None else opt.default
        expected = core if not isinstance(field.default, tuple) else ",".join(map(str, field.default))
        assert shown == expected, field.name


def test_form_enums_are_the_core_choices():
    arch = next(o for o in co.TRAIN_OPTIONS if o.flag == "arch")
    assert arch.values == list(options_of(TrainConfig)[0].choices)
    ctf = next(o for o in co.TRAIN_OPTIONS if o.flag == "CTF_mode")
    assert ctf.values == [None, "phase_only", "wiener", "network"] and ctf.default == 0
    loss = next(o for o in co.TRAIN_OPTIONS if o.flag == "loss_func")
    assert None not in loss.values and loss.values[loss.default] == "FSC"
    clip = next(o for o in co.TRAIN_OPTIONS if o.flag == "clip_first_peak_mode")
    assert clip.values == [0, 1, 2, 3] and clip.choices[2].startswith("2")
    assert {o.flag for o in co.REFINE_OPTIONS} == set(REFINE_ONLY)
    assert {o.attr for o in co.PREDICT_OPTIONS} >= {"apply_mw_x1", "padding_factor",
                                                    "predict_batch_size", "predict_isCTFflipped"}


def test_an_option_added_to_a_config_reaches_parser_and_form():
    """What adding an option takes: one field. Its spelling, type, default and choices reach
    the command line and the form; values round-trip into the config."""

    @dataclasses.dataclass(frozen=True)
    class Demo:
        speed_a: float = option(2.5, "how fast", flag="speed", unit="A")
        mode: Literal["x", "y"] = option("y", "which mode")
        limit: Optional[int] = option(None, "upper bound; None: none")
        verbose: bool = option(False, "talk more")
        internal: int = 7                      # not an option

    parser = argparse.ArgumentParser()
    common.add_config_options(parser, Demo)
    assert "[A]" in parser.format_help() and "--speed" in parser.format_help()
    args = parser.parse_args(["--speed", "4", "--mode", "x", "--limit", "3", "--verbose"])
    assert Demo(**common.config_values(Demo, args)) == Demo(4.0, "x", 3, True)
    assert Demo(**common.config_values(Demo, parser.parse_args([]))) == Demo()
    assert common.config_values(Demo, parser.parse_args(["--limit", "None"]))["limit"] is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "z"])

    form = {o.flag: o for o in co.catalogue(Demo, {"mode": co.Look("Mode")})}
    assert set(form) == {"speed", "mode", "limit", "verbose"}
    assert (form["speed"].default, form["speed"].paramClass, form["speed"].expert) == (2.5, co.P.FloatParam, True)
    assert (form["mode"].values, form["mode"].default, form["mode"].label) == (["x", "y"], 1, "Mode")
    assert form["limit"].allowsNull and form["limit"].paramClass is co.P.IntParam
    assert "(A)" in form["speed"].help
    with pytest.raises(KeyError, match="nothing"):
        co.catalogue(Demo, {"nothing": co.Look("No")})


def test_loss_defaults_follow_the_core_per_protocol():
    """Refine's form offers FSC and denoise's FSC+L2, as the core commands do; the protocols'
    values are what their command lines pass."""
    from isonet2scipion.protocols import ProtIsoNet2Denoise, ProtIsoNet2Refine

    for cls, method in ((ProtIsoNet2Refine, "isonet2-n2n"), (ProtIsoNet2Denoise, "n2n")):
        prot = cls()
        args = co.coreArgs(prot, co.TRAIN_OPTIONS)
        assert args[args.index("--loss_func") + 1] == DEFAULT_LOSS_FUNC[method]
        assert "--mw_weight" not in args


def test_docs_table_is_generated_from_the_parsers():
    """docs/options.md is what `python -m isonet2core.cli.docs` prints (regenerate it when an
    option changes)."""
    from pathlib import Path

    from isonet2core.cli import docs
    committed = (Path(__file__).resolve().parents[2] / "docs" / "options.md").read_text()
    assert committed == docs.markdown()
    assert "| `--CTF_mode` | `None` | None, phase_only, wiener, network |" in committed
