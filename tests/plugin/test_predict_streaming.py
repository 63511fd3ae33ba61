"""Predict in streaming: an open tomogram set is followed, each tomogram predicted and registered
as it arrives, the output set closed when the input closes; training refuses open inputs."""
import threading
import time

import mrcfile
import numpy as np
import pytest
from pyworkflow.object import Set
from tomo.objects import SetOfTomograms, TomoAcquisition, Tomogram

from isonet2core.io import star
from isonet2scipion import Plugin
from isonet2scipion.constants import HALVES_NONE
from isonet2scipion.objects import IsoNet2Model
from isonet2scipion.protocols import ProtIsoNet2Predict, ProtIsoNet2Refine
from isonet2scipion.protocols.predict_streaming import stream_round


def _acquisition():
    return TomoAcquisition(angleMin=-60.0, angleMax=60.0, step=3.0, voltage=300.0,
                           sphericalAberration=2.7, amplitudeContrast=0.07)


def _tomogram(tmp_path, ts_id):
    path = tmp_path / f"{ts_id}.mrc"
    with mrcfile.new(str(path), overwrite=True) as m:
        m.set_data(np.random.default_rng(0).normal(size=(16, 32, 32)).astype(np.float32))
        m.voxel_size = 10.0
    tomo = Tomogram(tsId=ts_id)
    tomo.setLocation(str(path))
    tomo.setSamplingRate(10.0)
    tomo.setAcquisition(_acquisition())
    return tomo


def _open_set(tmp_path):
    tomo_set = SetOfTomograms(filename=str(tmp_path / "tomograms.sqlite"))
    tomo_set.setSamplingRate(10.0)
    tomo_set.setAcquisition(_acquisition())
    tomo_set.setStreamState(Set.STREAM_OPEN)
    tomo_set.write()
    return tomo_set


def _predict(tmp_path, tomo_set):
    model = tmp_path / "network_isonet2_unet-small_16_full.pt"
    model.write_bytes(b"")
    prot = ProtIsoNet2Predict()
    (tmp_path / "run").mkdir(exist_ok=True)
    prot.setWorkingDir(str(tmp_path / "run"))
    prot.halvesSource.set(HALVES_NONE)
    prot.inputTomograms.set(tomo_set)
    prot.inputModel.set(IsoNet2Model(path=str(model), method="isonet2", arch="unet-small",
                                     cubeSize=16, ctfMode=None, epochs=1))
    prot.useGpu.set(False)
    prot._streamSleep = 0.05
    return prot


def _fake_core(tmp_path):
    """What ``isonet2 predict`` leaves: the corrected map, named in its STAR's column."""
    def run_core(protocol, step, args, gpus=None, cwd=None):
        assert step == "predict" and args[-2:] == ["--tomo_idx", "1"]
        table = star.TomogramsTable.read(args[0])
        out = tmp_path / "run" / "extra" / "predicted" / f"{table.tomo_name(0)}_corrected.mrc"
        out.parent.mkdir(parents=True, exist_ok=True)
        with mrcfile.new(str(out), overwrite=True) as m:
            m.set_data(np.zeros((16, 32, 32), np.float32))
        table.set_value(0, star.CORRECTED, str(out))
        table.write(args[0])
    return run_core


def test_a_round_takes_the_new_tomograms_and_ends_once_the_set_was_closed():
    class E:
        def __init__(self, ts_id):
            self.ts_id = ts_id
    entries = [E("a"), E("b"), E("c")]
    new, finished = stream_round(entries, {"a"}, stream_open=True)
    assert [e.ts_id for e in new] == ["b", "c"] and not finished
    new, finished = stream_round(entries, {"a", "b", "c"}, stream_open=False)
    assert new == [] and finished


def test_predict_follows_an_open_set_and_closes_its_output_with_it(tmp_path, monkeypatch):
    tomo_set = _open_set(tmp_path)
    tomo_set.append(_tomogram(tmp_path, "TS_01"))
    tomo_set.write()
    prot = _predict(tmp_path, tomo_set)
    # predict accepts the open set with a thread to follow it; training waits for a closed one
    prot.numberOfThreads.set(2)
    assert any("at least 3 threads" in e for e in prot._validate())
    prot.numberOfThreads.set(3)
    assert prot._validate() == [] and prot._inputIsOpen()
    assert any("Streaming" in line for line in prot._summary())
    refine = ProtIsoNet2Refine()
    refine.halvesSource.set(HALVES_NONE)
    refine.inputTomograms.set(tomo_set)
    refine.cube_size.set(16)
    assert any("still being produced" in e for e in refine._validate())

    prot._insertAllSteps()
    generator = prot._steps[-1]
    assert generator.funcName.get() == "streamGeneratorStep"
    worker = threading.Thread(target=prot.streamGeneratorStep, args=("now", *generator._args[1:]))
    worker.start()
    time.sleep(0.5)
    assert [s.funcName.get() for s in prot._steps[1:]] == ["streamPredictStep", "streamRegisterStep"]
    tomo_set.append(_tomogram(tmp_path, "TS_02"))       # a tomogram arrives
    tomo_set.write()
    time.sleep(0.5)
    tomo_set.setStreamState(Set.STREAM_CLOSED)          # the producer finished
    tomo_set.write()
    worker.join(timeout=30)
    assert not worker.is_alive()
    names = [s.funcName.get() for s in prot._steps[1:]]
    assert names == ["streamPredictStep", "streamRegisterStep"] * 2 + ["streamCloseStep"]
    assert prot._steps[-1]._prerequisites == [3, 5]     # after every registration

    monkeypatch.setattr(Plugin, "runCore", classmethod(lambda cls, *a, **k: _fake_core(tmp_path)(*a, **k)))
    relations = []      # relations are stored by the project's mapper (none here): recorded
    monkeypatch.setattr(prot, "_defineSourceRelation", lambda src, dst: relations.append(src))
    for step in prot._steps[1:]:
        getattr(prot, step.funcName.get())(*step._args)
        if step.funcName.get() == "streamRegisterStep":
            out = prot.tomograms
            assert out.isStreamOpen()                   # registered as it arrives, still open
    out = prot.tomograms
    assert not out.isStreamOpen()
    assert sorted(t.getTsId() for t in out) == ["TS_01", "TS_02"]
    assert all(t.getFileName().endswith("_corrected.mrc") for t in out)
    assert relations == [prot.inputTomograms, prot.inputModel]      # once, with the first


def test_a_resumed_generator_does_not_predict_registered_tomograms_again(tmp_path):
    tomo_set = _open_set(tmp_path)
    for ts_id in ("TS_01", "TS_02"):
        tomo_set.append(_tomogram(tmp_path, ts_id))
    tomo_set.setStreamState(Set.STREAM_CLOSED)
    tomo_set.write()
    prot = _predict(tmp_path, tomo_set)
    done = SetOfTomograms(filename=str(tmp_path / "done.sqlite"))
    done.append(_tomogram(tmp_path, "TS_01"))
    prot._defineOutputs(tomograms=done)
    prot.streamGeneratorStep("again", str(tmp_path / "m.pt"), "{}")
    assert [s._args[0] for s in prot._steps if s.funcName.get() == "streamPredictStep"] == ["TS_02"]


@pytest.mark.parametrize("closed", [True])
def test_a_closed_set_keeps_the_usual_steps(tmp_path, closed):
    tomo_set = _open_set(tmp_path)
    tomo_set.append(_tomogram(tmp_path, "TS_01"))
    tomo_set.setStreamState(Set.STREAM_CLOSED)
    tomo_set.write()
    prot = _predict(tmp_path, tomo_set)
    prot._insertAllSteps()
    assert [s.funcName.get() for s in prot._steps] == ["convertInputStep", "tomogramStep", "createOutputStep"]
