"""The protocol forms offer the core's options with the core's defaults."""
import argparse

import pytest

from isonet2core.cli import deconv, make_mask, predict, refine
from isonet2scipion.protocols import protocol_base as pb


def _core_defaults(module):
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser


@pytest.mark.parametrize("options, module", [
    (pb.DECONV_OPTIONS, deconv), (pb.MASK_OPTIONS, make_mask),
    (pb.TRAIN_OPTIONS + pb.REFINE_OPTIONS, refine), (pb.PREDICT_OPTIONS, predict)],
    ids=["deconv", "make_mask", "refine", "predict"])
def test_form_defaults_are_the_core_defaults(options, module):
    parser = _core_defaults(module)
    dests = {a.dest for a in parser._actions}
    checked = 0
    for opt in options:
        assert opt.flag in dests, f"--{opt.flag} is not an option of the core command"
        core = parser.get_default(opt.flag)
        if isinstance(opt, pb.CtfCorrectedOption):
            # "auto": the tomograms' CTF-corrected flag, unset (False) unless a protocol set it
            assert core is False and opt.choices[opt.default].startswith("auto"), opt.attr
            continue
        form = opt.default
        if opt.choices is not None and not opt.enumIndex:
            form = opt.choices[opt.default]
        if form is None or core is None:
            continue
        if isinstance(core, float) or isinstance(form, float):
            assert float(form) == pytest.approx(float(core)), opt.attr
        else:
            assert form == core, f"{opt.attr}: form {form!r}, core {core!r}"
        checked += 1
    assert checked >= len(options) // 2
