"""Wizard logic, headless (``suggest``), on the quick demo project and on empty forms."""
import pytest

from isonet2core.training import budget
from isonet2scipion.protocols import ProtIsoNet2Deconv, ProtIsoNet2Refine
from isonet2scipion.wizards import IsoNet2DefocusWizard, IsoNet2EpochsWizard, IsoNet2SubtomosWizard


def test_targets():
    for wizard, param in ((IsoNet2SubtomosWizard, "number_subtomos"),
                          (IsoNet2EpochsWizard, "epochs"), (IsoNet2DefocusWizard, "defocus")):
        assert any(cls is ProtIsoNet2Refine and params == [param]
                   for cls, params in wizard._targets)
        for cls, params in wizard._targets:
            assert cls().getParam(params[0]) is not None, (cls, params)


def test_suggestions_on_the_demo_refine(demo_project):
    runs, _ = demo_project
    refine = runs["ProtIsoNet2Refine"]
    n = refine._referenceSet().getSize()
    value, message = IsoNet2SubtomosWizard.suggest(refine)
    assert value == budget.subtomos_per_tomogram(n, refine.epochs.get())
    assert str(value) in message
    value, message = IsoNet2EpochsWizard.suggest(refine)
    assert value == budget.epochs_for(n, refine.number_subtomos.get())
    refine.number_subtomos.set(None)          # automatic subtomograms
    value, message = IsoNet2EpochsWizard.suggest(refine)
    assert value == budget.epochs_for(n, budget.default_subtomos_per_tomogram(n))
    assert "(automatic)" in message
    # the simulator wrote 30000 A at every tilt of tomo_001
    value, message = IsoNet2DefocusWizard.suggest(refine)
    assert value == pytest.approx(30000.0)
    assert "tomo_001: 30000 Å" in message


def test_suggestions_without_inputs():
    refine, deconv = ProtIsoNet2Refine(), ProtIsoNet2Deconv()
    assert IsoNet2SubtomosWizard.suggest(refine) == (None, "Choose the input tomograms first.")
    assert IsoNet2EpochsWizard.suggest(refine)[0] is None
    value, message = IsoNet2DefocusWizard.suggest(deconv)
    assert value is None and "CTF estimations first" in message
