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


def test_loss_defaults_follow_the_core_per_protocol():
    """Refine's form offers FSC and denoise's FSC+L2, as the core commands do; the protocols'
    values are what their command lines pass."""
    from isonet2core.config import DEFAULT_LOSS_FUNC
    from isonet2scipion.constants import LOSS_CHOICES
    from isonet2scipion.protocols import ProtIsoNet2Denoise, ProtIsoNet2Refine

    for cls, method in ((ProtIsoNet2Refine, "isonet2-n2n"), (ProtIsoNet2Denoise, "n2n")):
        prot = cls()
        assert LOSS_CHOICES[prot.loss_func.get()] == DEFAULT_LOSS_FUNC[method]
        args = pb.coreArgs(prot, pb.TRAIN_OPTIONS)
        assert args[args.index("--loss_func") + 1] == DEFAULT_LOSS_FUNC[method]
