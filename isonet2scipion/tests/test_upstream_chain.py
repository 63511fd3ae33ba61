"""The plugin chained after upstream protocols, their outputs shaped as those protocols write
them, in a real Scipion project.

* Tomograms with linked even/odd halves as AreTomo's Scipion protocol leaves them: the half
  maps stored ``[odd, even]`` with AreTomo's ``_ODD_Vol``/``_EVN_Vol`` file names, and the
  CTF-corrected flag (AreTomo sets it when it corrects the CTF of the tilt series).
* CTF series imported from IMOD ``.defocus`` files (tomo's import, IMOD's parser), on a tilt
  series where two views were excluded (disabled tilt images, as IMOD's exclusion leaves them:
  the acquisition still says -60..60).
* Then make mask -> refine (Noise2Noise, CTF network mode) -> predict, with tiny CPU settings,
  and the validation message of each bad input: a cube larger than a tomogram, a mask of
  another shape or sampling, an unknown or mixed CTF-corrected state, an input set still open, a CTF series
  whose tilt-series pointer is broken.

Run by ``scipion3 test isonet2scipion.tests.test_upstream_chain`` (needs the managed
environment, ``scipion3 installb isonet2scipion-<version>``) and by the README's test command.
Needs scipion-em-imod (the CTF import uses its parser).
"""
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import mrcfile
import numpy as np
import tomo.protocols
from pyworkflow.object import Pointer, Set
from pyworkflow.plugin import Domain
from pyworkflow.tests import setupTestProject
from tomo.protocols.protocol_import_ctf import ImportChoice
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from isonet2core.io import star
from isonet2scipion.constants import CTF_CORRECTED_AUTO, CTF_CORRECTED_NO, HALVES_LINKED, TOMOGRAMS_STAR
from isonet2scipion.protocols import ProtIsoNet2MakeMask, ProtIsoNet2Predict, ProtIsoNet2Refine
from isonet2scipion.tests.protocol_runs import ProtocolRuns

PIXEL_SIZE = 10.0
SHAPE_ZYX = (32, 64, 64)
TILT_MIN, TILT_MAX, TILT_STEP = -60.0, 60.0, 3.0
EXCLUDED = (57.0, 60.0)            # views excluded on the first tilt series
CPU = dict(useGpu=False, numberOfThreads=1, binThreads=2)
TINY = dict(arch=0, cube_size=16, epochs=1, number_subtomos=4, batch_size=4, save_interval=1,
            padding_factor=1.0, CTF_mode=3, **CPU)


class TestIsoNet2AfterUpstream(ProtocolRuns, TestBaseCentralizedLayer):

    @classmethod
    def setUpClass(cls):
        cls._cwd = os.getcwd()
        setupTestProject(cls)
        cls.dataDir = Path(cls.proj.getPath()).parent / f"{cls.projName}_data"
        # data from the core's simulator, run in the plugin's environment (Scipion's own has
        # no torch): full/even/odd tomograms, IMOD .defocus files
        Plugin = Domain.getPluginModule("isonet2scipion").Plugin   # its variables registered
        program = Plugin.getCoreProgram()
        if program is None:
            raise RuntimeError(Plugin.checkEnvironment()[0])
        subprocess.run(f"{program} simulate --output_dir {shlex.quote(str(cls.dataDir))} "
                       f"--n_tomograms 2 --shape {','.join(map(str, SHAPE_ZYX))} "
                       f"--pixel_size {PIXEL_SIZE} --tilt_min {TILT_MIN} --tilt_max {TILT_MAX} "
                       f"--tilt_step {TILT_STEP} --defocus 30000 --defocus_step 5000 "
                       f"--dose_snr 30 --seed 5", shell=True, check=True,
                       executable="/bin/bash", env=Plugin.getEnviron(), cwd=str(cls.dataDir.parent))
        cls.names = sorted(p.stem for p in (cls.dataDir / "full").glob("*.mrc"))
        # AreTomo's layout: <tsId>.mrc with <tsId>_EVN_Vol.mrc / <tsId>_ODD_Vol.mrc beside
        aretomo = cls.dataDir / "aretomo"
        aretomo.mkdir()
        for name in cls.names:
            for key, suffix in (("full", ""), ("even", "_EVN_Vol"), ("odd", "_ODD_Vol")):
                shutil.copy(cls.dataDir / key / f"{name}.mrc", aretomo / f"{name}{suffix}.mrc")
        n_tilts = int(round((TILT_MAX - TILT_MIN) / TILT_STEP)) + 1
        (cls.dataDir / "ts").mkdir()
        rng = np.random.default_rng(0)
        for name in cls.names:
            with mrcfile.new(str(cls.dataDir / "ts" / f"{name}.mrc")) as mrc:
                mrc.set_data(rng.standard_normal((n_tilts, 16, 16)).astype(np.float32))
                mrc.voxel_size = PIXEL_SIZE

    @classmethod
    def tearDownClass(cls):
        os.chdir(cls._cwd)

    # ------------------------------------------------------------------ helpers
    def _assertInvalid(self, expected, cls, **kwargs):
        errors = self._errors(cls, **kwargs)
        self.assertTrue(any(all(word in e for word in expected) for e in errors),
                        msg=f"expected an error with {expected}, got {errors}")

    @staticmethod
    def _rewriteItems(itemSet, change):
        """Change the items of a finished protocol's output set in place, as the upstream
        protocol would have written them (``change(item)`` edits one item)."""
        items = [item.clone() for item in itemSet.iterItems()]
        for item in items:
            change(item)
            itemSet.update(item)
        itemSet.write()

    def _aretomoTomograms(self):
        """Tomograms shaped as AreTomo's protocol outputs them (halves [odd, even])."""
        imported = self._run(tomo.protocols.ProtImportTomograms,
                             filesPath=str(self.dataDir / "aretomo"), filesPattern="*.mrc",
                             exclusionWords="EVN ODD", samplingRate=PIXEL_SIZE,
                             acquisitionAngleMin=TILT_MIN, acquisitionAngleMax=TILT_MAX,
                             step=TILT_STEP, voltage=300.0, sphericalAberration=2.7,
                             amplitudeContrast=0.1)
        tomos = imported.Tomograms
        folder = self.dataDir / "aretomo"

        def link(tomogram):
            tsId = tomogram.getTsId()
            tomogram.setHalfMaps([str(folder / f"{tsId}_ODD_Vol.mrc"),
                                  str(folder / f"{tsId}_EVN_Vol.mrc")])
            tomogram.setCtfCorrected(tsId == self.names[0])   # only the first is flagged
        self._rewriteItems(tomos, link)
        return imported, tomos

    def _imodCtfs(self):
        """IMOD CTF estimations on tilt series whose first one had two views excluded."""
        tsImport = self._importTiltSeries(self.dataDir / "ts", TILT_MIN, TILT_MAX, TILT_STEP, PIXEL_SIZE)
        tsSet = tsImport.outputTiltSeries
        first = tsSet.getTiltSeriesFromTsId(self.names[0])
        images = [ti.clone() for ti in first.iterItems()]
        self.assertTrue(all(ti.getAcquisitionOrder() is not None for ti in images))
        for ti in images:
            if ti.getTiltAngle() in EXCLUDED:
                ti.setEnabled(False)
                first.update(ti)
        first.write()
        tsSet.update(first)
        tsSet.write()
        ctfImport = self._run(tomo.protocols.ProtImportTsCTF, importFrom=ImportChoice.IMOD.value,
                              filesPath=str(self.dataDir / "ctf"), filesPattern="*.defocus",
                              inputSetOfTiltSeries=tsSet)
        return tsImport, ctfImport.CTFs

    # ------------------------------------------------------------------ the chain
    def test_chain_after_aretomo_and_imod(self):
        importProt, tomos = self._aretomoTomograms()
        tsImport, ctfs = self._imodCtfs()
        # without the tilt series the tomograms came from, the unflagged one's state is
        # unknown (the CTF's own tilt series is not flagged): "auto" is refused, naming it
        self._assertInvalid(["unknown for " + self.names[1], "'Tilt series'"],
                            ProtIsoNet2Refine, halvesSource=HALVES_LINKED, inputTomograms=tomos,
                            inputCtfs=ctfs, **TINY)
        inputs = dict(halvesSource=HALVES_LINKED, inputTomograms=tomos, inputCtfs=ctfs,
                      inputTiltSeries=tsImport.outputTiltSeries)

        # CTF-corrected on one tomogram only: "auto" cannot decide, the error names it
        self._assertInvalid(["only some tomograms were reconstructed from CTF phase-flipped "
                             "tilt series", self.names[0]], ProtIsoNet2Refine, **inputs, **TINY)
        self.assertFalse(any("phase-flipped" in e for e in self._errors(
            ProtIsoNet2Refine, **inputs, **TINY, isCTFflipped=CTF_CORRECTED_NO,
            predict_isCTFflipped=CTF_CORRECTED_NO)))
        # now flagged on both (as AreTomo leaves a run with CTF correction): auto says yes
        self._rewriteItems(tomos, lambda t: t.setCtfCorrected(True))

        # a cube that does not fit the 32-voxel-thick tomograms
        self._assertInvalid(["cube_size 48", "(32, 64, 64)", self.names[0]],
                            ProtIsoNet2Refine, **inputs, **dict(TINY, cube_size=48))

        # an input set still open (a streaming upstream protocol still running)
        ctfs.setStreamState(Set.STREAM_OPEN)
        ctfs.write()
        self._assertInvalid(["CTF estimations", "still being produced"], ProtIsoNet2Refine,
                            **inputs, **TINY)
        ctfs.setStreamState(Set.STREAM_CLOSED)
        ctfs.write()

        # make mask on the AreTomo tomograms
        mask = self._run(ProtIsoNet2MakeMask, inputTomograms=tomos, numberOfThreads=1,
                         binThreads=2)
        masks = mask.tomoMasks
        self.assertEqual(sorted(masks.getTSIds()), self.names)

        # refine, chained after both: tilt range of each tomogram from its enabled tilts
        refine = self._run(ProtIsoNet2Refine, **inputs, inputMasks=masks, **TINY,
                           doPredict=False, isCTFflipped=CTF_CORRECTED_AUTO)
        table = star.TomogramsTable.read(refine._getExtraPath(TOMOGRAMS_STAR))
        ranges = {table.tomo_name(r): (table.microscope(r).tilt_min_deg,
                                       table.microscope(r).tilt_max_deg)
                  for r in range(len(table))}
        self.assertEqual(ranges, {self.names[0]: (-60.0, 54.0), self.names[1]: (-60.0, 60.0)})
        summary = "\n".join(refine._summary())
        self.assertIn(f"Tilt range {self.names[0]}: -60 to 54 deg (views enabled in the tilt "
                      f"series and its CTF estimation)", summary)
        self.assertIn(f"Phase flipped {self.names[1]}: yes (the tomogram is flagged "
                      f"CTF-corrected)", summary)
        # the halves were recognised by AreTomo's names, although stored [odd, even]
        for row in range(len(table)):
            self.assertTrue(str(table.path(row, star.TOMO_HALF1)).endswith("_EVN_Vol.mrc"))
            self.assertTrue(str(table.path(row, star.TOMO_HALF2)).endswith("_ODD_Vol.mrc"))
        # the flag was followed: the core was told the tomograms are phase flipped
        import json
        with open(os.path.join(refine._getExtraPath("model"), "config.json")) as f:
            config = json.load(f)
        self.assertIs(_find(config, "is_ctf_flipped"), True)

        # predict with the trained network: CTF-corrected output, halves kept
        predict = self._run(ProtIsoNet2Predict, **inputs, inputModel=refine.model,
                            padding_factor=1.0, **CPU)
        out = predict.tomograms
        self.checkTomograms(out, expectedSetSize=2, expectedSRate=PIXEL_SIZE,
                            expectedDimensions=[SHAPE_ZYX[2], SHAPE_ZYX[1], SHAPE_ZYX[0]],
                            hasOddEven=True, hasHalves=True, ctfCorrected=True)
        self.assertTrue(all(t.ctfCorrected() for t in out))
        self.assertEqual(predict.progressLines(), ["Predicted 2 of 2 tomograms"])
        self.assertTrue(any(line.startswith("Training: epoch 1/1, loss ")
                            for line in refine._summary()), refine._summary())

        # a mask of another shape and sampling than its tomogram (made from another map)
        small = self.dataDir / "small_mask.mrc"
        with mrcfile.new(str(small)) as mrc:
            mrc.set_data(np.ones((16, 32, 32), np.float32))
            mrc.voxel_size = 2 * PIXEL_SIZE

        def shrink(m):
            if m.getTsId() == self.names[1]:
                m.setLocation(str(small))
                m.setSamplingRate(2 * PIXEL_SIZE)
        self._rewriteItems(masks, shrink)
        self._assertInvalid([f"mask of {self.names[1]}", "(16, 32, 32)", "(32, 64, 64)"],
                            ProtIsoNet2Refine, **inputs, inputMasks=masks, **TINY)
        self._assertInvalid([f"mask of {self.names[1]}", "20 Å/px"],
                            ProtIsoNet2Refine, **inputs, inputMasks=masks, **TINY)

        # the tilt series behind the CTF estimations deleted: an error, not a traceback
        ctfs.setSetOfTiltSeries(Pointer(tsImport, extended="outputOfADeletedRun"))
        ctfs.write()
        self._assertInvalid(["tilt series of the CTF estimations cannot be found"],
                            ProtIsoNet2Refine, **inputs, **TINY)


def _find(tree, key):
    """The value of ``key`` anywhere in a nested dict (the saved config's layout)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        for value in tree.values():
            found = _find(value, key)
            if found is not None:
                return found
    return None

