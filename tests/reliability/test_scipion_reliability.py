"""The Scipion side: refusal before running, failed steps that register nothing half-made,
Continue re-running only the failed step, and two protocols running at once in one project.

The project tests run real protocols (imports, IsoNet2 predict through the core) and are
slow-marked; the conversion check is fast.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from reliability_helpers import make_checkpoint, smooth_volume

from isonet2scipion import convert


def test_a_ts_id_without_ctf_is_named_before_running(tmp_path):
    """A CTF set that lacks one tilt series: the protocol's validation names that tsId."""
    from tomo.objects import TomoAcquisition, Tomogram
    full = {}
    for ts in ("TS_01", "TS_02"):
        tomo = Tomogram(tsId=ts)
        tomo.setLocation(str(tmp_path / f"{ts}.mrc"))
        tomo.setSamplingRate(10.0)
        tomo.setAcquisition(TomoAcquisition(angleMin=-60.0, angleMax=60.0, step=3.0, voltage=300.0,
                                            sphericalAberration=2.7, amplitudeContrast=0.07))
        tomo.setHalfMaps([])
        full[ts] = tomo
    entries, errors = convert.collect_entries(full=full, defocus={"TS_01": 20000.0},
                                              need_defocus=True, tilt_range=(-60.0, 60.0))
    assert any("no defocus for TS_02" in e for e in errors), errors
    assert not any("TS_01" in e for e in errors), errors


PIXEL = 10.0


@pytest.mark.slow
class TestScipionReliability:
    """One headless project: two imported tomograms and an imported model."""

    @classmethod
    def setup_class(cls):
        import pyworkflow as pw
        from pyworkflow.protocol.hosts import HostConfig
        from pyworkflow.tests import BaseTest, setupTestProject

        if not os.path.exists(pw.Config.SCIPION_HOSTS):   # as tests/plugin/conftest.py
            os.makedirs(os.path.dirname(pw.Config.SCIPION_HOSTS), exist_ok=True)
            HostConfig.writeBasic(pw.Config.SCIPION_HOSTS)

        class _Holder(BaseTest):
            pass

        cls.holder = _Holder
        cls._cwd = os.getcwd()
        setupTestProject(cls.holder)
        cls.proj = cls.holder.proj
        data = Path(cls.proj.getPath()).parent / f"{cls.holder.projName}_data"
        from isonet2core.io import mrcio
        for i, ts in enumerate(("t1", "t2")):
            mrcio.write_mrc(data / "tomos" / f"{ts}.mrc", smooth_volume((32, 48, 48), i), PIXEL)
        model = make_checkpoint(data / "model" / "network_isonet2_unet-small_16_full.pt",
                                method="isonet2")
        import tomo.protocols

        from isonet2scipion.protocols import ProtIsoNet2ImportModel
        cls.tomos = cls._run(tomo.protocols.ProtImportTomograms, filesPath=str(data / "tomos"),
                             filesPattern="*.mrc", samplingRate=PIXEL, acquisitionAngleMin=-60.0,
                             acquisitionAngleMax=60.0, step=3.0).Tomograms
        cls.model = cls._run(ProtIsoNet2ImportModel, modelFile=str(model)).model

    @classmethod
    def teardown_class(cls):
        os.chdir(cls._cwd)

    @classmethod
    def _run(cls, protClass, **kwargs):
        prot = cls.proj.newProtocol(protClass, **kwargs)
        cls.proj.launchProtocol(prot, wait=True)
        assert prot.isFinished(), f"{protClass.__name__} failed"
        return prot

    def _predict(self, label):
        from isonet2scipion.constants import HALVES_NONE
        from isonet2scipion.protocols import ProtIsoNet2Predict
        return self.proj.newProtocol(ProtIsoNet2Predict, objLabel=label, halvesSource=HALVES_NONE,
                                     inputTomograms=self.tomos, inputModel=self.model,
                                     padding_factor=1.0, useGpu=False, numberOfThreads=1,
                                     binThreads=1)

    def _wait(self, prots, timeout=300):
        """Poll the protocols' own run databases until none is active (they run detached)."""
        deadline = time.time() + timeout
        while True:
            for p in prots:
                self.proj._updateProtocol(p)
            if all(not p.isActive() for p in prots) or time.time() > deadline:
                return prots
            time.sleep(1)

    def test_failed_step_registers_nothing_and_continue_reruns_only_it(self):
        files = {t.getTsId(): t.getFileName() for t in self.tomos}
        good = Path(files["t2"]).read_bytes()
        Path(files["t2"]).write_bytes(b"not an MRC any more")   # breaks only t2's step
        try:
            prot = self._predict("predict, t2 broken")
            self.proj.launchProtocol(prot, wait=True)
            prot = self.proj.getProtocol(prot.getObjId())
            assert prot.isFailed()
            assert not prot.hasAttribute("tomograms"), "a half-made output was registered"
            steps = {s.getObjId(): s for s in prot.loadSteps()}
            status = sorted((s.funcName.get(), s.getStatus()) for s in steps.values())
            assert ("tomogramStep", "failed") in status and ("tomogramStep", "finished") in status, status
            done = sorted(Path(prot._getExtraPath("predicted")).glob("t1_*.mrc"))
            assert done, "t1's step should have finished"
            stamps = {p: p.stat().st_mtime_ns for p in done}
        finally:
            Path(files["t2"]).write_bytes(good)
        self.proj.launchProtocol(prot, wait=True)      # Continue (the default run mode)
        prot = self.proj.getProtocol(prot.getObjId())
        assert prot.isFinished()
        assert {p: p.stat().st_mtime_ns for p in done} == stamps, "t1 was recomputed"
        assert sorted(t.getTsId() for t in prot.tomograms) == ["t1", "t2"]

    def test_two_predicts_at_once(self):
        prots = [self._predict(f"concurrent {i}") for i in (1, 2)]
        for p in prots:
            self.proj.launchProtocol(p, wait=False)
        prots = self._wait(prots)
        assert all(p.isFinished() for p in prots), [p.getStatus() for p in prots]
        from isonet2core.io import mrcio
        outputs = [{t.getTsId(): os.path.abspath(t.getFileName()) for t in p.tomograms} for p in prots]
        assert sorted(outputs[0]) == sorted(outputs[1]) == ["t1", "t2"]
        for ts in ("t1", "t2"):
            a, b = outputs[0][ts], outputs[1][ts]
            assert a != b, "two protocols share an output file"
            np.testing.assert_array_equal(mrcio.read_mrc(a)[0], mrcio.read_mrc(b)[0])
