"""The plugin after scipion-em-imod's own protocols, run for real in a Scipion project with
stand-in IMOD programs (:mod:`isonet2scipion.tests.imod_standins`: ``newstack``,
``ctfphaseflip``, ``tilt``, ``trimvol``, found by IMOD's plugin in the ``IMOD_HOME`` the test
sets), so that every object reaching our protocols is registered by the upstream code itself:

1. tilt series: tomo's ``ProtImportTs`` on projections of the core simulator's phantom (two
   tilt series, -60..60 step 3), two views of TS_01 (57 and 60 deg) excluded afterwards (tilt
   images disabled, as IMOD's exclusion leaves them). The odd/even stacks are attached to the
   tilt images with ``TiltImage.setOddEven([odd, even])`` as tomo's motion correction
   (``ProtTsCorrectMotion``) registers them: no import protocol reads odd/even tilt series, and
   the motion-correction protocols that write them need movies and a motion-correction
   program, so this one step is done by hand with tomo's own methods (and the series' flag set
   as ``TiltSeries.append`` sets it);
2. CTF: tomo's ``ProtImportTsCTF`` from IMOD ``.defocus`` files (IMOD's parser);
3. ``ProtImodCtfCorrection`` (odd/even on): ``newstack`` re-stacks TS_01 without its excluded
   views, ``ctfphaseflip`` writes the corrected stacks; IMOD flags the *tilt series*
   CTF-corrected;
4. ``ProtImodTomoReconstruction`` (odd/even on): ``tilt`` back-projects the full, odd and even
   stacks (16-bit, as ``-MODE 1``), ``trimvol -rx`` rotates them; IMOD registers the tomograms
   with ``Tomogram.copyInfo(tiltSeries)`` (which leaves them unflagged) and the halves
   ``[odd, even]``;
5. our make mask -> refine (Noise2Noise, CTF network mode, tiny CPU settings) -> predict.

Asserted: the upstream facts the plugin has to live with (series flagged, tomograms not); no
double phase flip (without the tilt series "auto" is refused as unknown; with IMOD's corrected
tilt series refine and predict tell the core the maps are phase flipped: command line, saved
configuration, summary); the tilt range of the enabled views in the STAR refine wrote
(``rlnTiltMin/Max``); the halves taken from IMOD's odd/even maps; the programs IMOD ran.

Needs scipion-em-imod. About 2.5 min on 2 shared CPU cores (IMOD's two protocols about a minute,
their streaming loop waiting 10 s a turn; predict about a minute), so it is a long test: run by
``pytest -m slow isonet2scipion/tests`` (CI) and by ``scipion3 test
isonet2scipion.tests.test_imod_chain``.
"""
import json
import os
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import starfile
import tomo.protocols
from imod.protocols import ProtImodCtfCorrection, ProtImodTomoReconstruction
from pyworkflow.tests import setupTestProject
from tomo.protocols.protocol_import_ctf import ImportChoice
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from isonet2core.io import star
from isonet2core.simulation import simulate
from isonet2scipion.constants import HALVES_LINKED, TOMOGRAMS_STAR
from isonet2scipion.protocols import ProtIsoNet2MakeMask, ProtIsoNet2Predict, ProtIsoNet2Refine
from isonet2scipion.tests import imod_standins
from isonet2scipion.tests.protocol_runs import ProtocolRuns

PIXEL_SIZE = 10.0
SHAPE_ZYX = (32, 64, 64)
TILT_MIN, TILT_MAX, TILT_STEP = -60.0, 60.0, 3.0
EXCLUDED = (57.0, 60.0)              # views excluded on TS_01
TS_IDS = ("TS_01", "TS_02")
DEFOCUS_A = {"TS_01": 30000.0, "TS_02": 35000.0}
CPU = dict(useGpu=False, numberOfThreads=1, binThreads=2)
TINY = dict(arch=0, cube_size=16, epochs=1, number_subtomos=4, batch_size=4, save_interval=1,
            padding_factor=1.0, CTF_mode=3, **CPU)
IMOD_RUN = dict(processOddEven=True, useGpu=False)


def _write_data(folder: Path):
    """Tilt series (full, odd, even stacks) of the simulator's phantoms and IMOD defocus files."""
    cfg = simulate.SimulationConfig(shape=SHAPE_ZYX, pixel_size_a=PIXEL_SIZE, tilt_min_deg=TILT_MIN,
                                    tilt_max_deg=TILT_MAX, tilt_step_deg=TILT_STEP)
    angles = simulate.tilt_angles(cfg)
    matrix = simulate.projection_matrix(SHAPE_ZYX, angles, n_u=SHAPE_ZYX[2])   # camera = nx
    for sub in ("ts", "halves", "ctf"):
        (folder / sub).mkdir(parents=True)
    for seed, tsId in enumerate(TS_IDS):
        rng = np.random.default_rng(seed)
        images = simulate.project(simulate.make_phantom(cfg, rng), matrix, len(angles))
        sigma = np.float32(2.0 * images.std())
        odd, even = (images + sigma * rng.standard_normal(images.shape, np.float32)
                     for _ in range(2))
        for path, data in ((folder / "ts" / f"{tsId}.mrc", 0.5 * (odd + even)),
                           (folder / "halves" / f"{tsId}_odd.mrc", odd),
                           (folder / "halves" / f"{tsId}_even.mrc", even)):
            with mrcfile.new(str(path)) as mrc:
                mrc.set_data(data.astype(np.float32))
                mrc.voxel_size = PIXEL_SIZE
        (folder / "ctf" / f"{tsId}.defocus").write_text(
            simulate.format_imod_defocus(angles, DEFOCUS_A[tsId]))


@pytest.mark.slow
class TestIsoNet2AfterImod(ProtocolRuns, TestBaseCentralizedLayer):

    @classmethod
    def setUpClass(cls):
        cls._cwd = os.getcwd()
        cls._env = {k: os.environ.get(k) for k in ("IMOD_HOME", "PATH")}
        setupTestProject(cls)
        cls.dataDir = Path(cls.proj.getPath()).parent / f"{cls.projName}_data"
        _write_data(cls.dataDir)
        # IMOD's plugin runs IMOD_HOME/bin/<program> when it exists (Plugin.getImodCmd); the
        # protocols' processes inherit this environment. bin/ on PATH too: the installation
        # check looks for etomo there.
        home = cls.dataDir / "imod"
        cls.callLog = imod_standins.install(home)
        os.environ["IMOD_HOME"] = str(home)
        os.environ["PATH"] = str(home / "bin") + os.pathsep + os.environ["PATH"]

    @classmethod
    def tearDownClass(cls):
        os.chdir(cls._cwd)
        for key, value in cls._env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    # ------------------------------------------------------------------ helpers
    def _calls(self, program):
        return [args for name, args in imod_standins.calls(self.callLog) if name == program]

    def _tiltSeries(self):
        """Imported tilt series with two views of TS_01 excluded and odd/even stacks."""
        tsImport = self._importTiltSeries(self.dataDir / "ts", TILT_MIN, TILT_MAX, TILT_STEP, PIXEL_SIZE)
        tsSet = tsImport.outputTiltSeries
        halves = self.dataDir / "halves"
        for ts in [t.clone() for t in tsSet.iterItems()]:
            tsId = ts.getTsId()
            for ti in [t.clone() for t in ts.iterItems()]:
                ti.setOddEven([str(halves / f"{tsId}_odd.mrc"), str(halves / f"{tsId}_even.mrc")])
                if tsId == TS_IDS[0] and ti.getTiltAngle() in EXCLUDED:
                    ti.setEnabled(False)
                ts.update(ti)
                ts._hasOddEven.set(ti.hasOddEven())     # what TiltSeries.append sets
            ts.write()
            tsSet.update(ts)
        tsSet.write()
        tsImport._store(tsSet)      # the set's own flags live in the project's database too
        self.assertTrue(self.proj.getProtocol(tsImport.getObjId()).outputTiltSeries.hasOddEven())
        return tsImport.outputTiltSeries

    # ------------------------------------------------------------------ the chain
    def test_chain_after_imod_ctf_correction_and_reconstruction(self):
        rawTs = self._tiltSeries()
        ctfs = self._run(tomo.protocols.ProtImportTsCTF, importFrom=ImportChoice.IMOD.value,
                         filesPath=str(self.dataDir / "ctf"), filesPattern="*.defocus",
                         inputSetOfTiltSeries=rawTs).CTFs
        corrected = self._run(ProtImodCtfCorrection, inputSetOfTiltSeries=rawTs,
                              inputSetOfCtfTomoSeries=ctfs, **IMOD_RUN).TiltSeries
        tomos = self._run(ProtImodTomoReconstruction, inputSetOfTiltSeries=corrected,
                          tomoThickness=SHAPE_ZYX[0], **IMOD_RUN).Tomograms
        self._checkUpstream(rawTs, corrected, tomos)

        inputs = dict(halvesSource=HALVES_LINKED, inputTomograms=tomos, inputCtfs=ctfs)
        # no double flip: without the tilt series they came from, nothing says the tomograms
        # are phase flipped (their flag is not set, the CTF's tilt series is the raw one)
        errors = self._errors(ProtIsoNet2Refine, **inputs, **TINY)
        self.assertTrue(any("unknown for TS_01, TS_02" in e and "'Tilt series'" in e
                            for e in errors), errors)
        inputs["inputTiltSeries"] = corrected

        masks = self._run(ProtIsoNet2MakeMask, inputTomograms=tomos, numberOfThreads=1,
                          binThreads=2).tomoMasks
        refine = self._run(ProtIsoNet2Refine, **inputs, inputMasks=masks, **TINY,
                           doPredict=False)
        self._checkRefine(refine)

        predict = self._run(ProtIsoNet2Predict, **inputs, inputModel=refine.model,
                            padding_factor=1.0, **CPU)
        self.assertTrue(any("--isCTFflipped True" in c for c in self._coreCommands(predict)),
                        self._coreCommands(predict))
        self.checkTomograms(predict.tomograms, expectedSetSize=2, expectedSRate=PIXEL_SIZE,
                            expectedDimensions=[SHAPE_ZYX[2], SHAPE_ZYX[1], SHAPE_ZYX[0]],
                            hasOddEven=True, hasHalves=True, ctfCorrected=True)

    def _checkUpstream(self, rawTs, corrected, tomos):
        """What IMOD's protocols ran and registered."""
        # newstack re-stacked TS_01 only (full, odd, even) without views 40 and 41 (57, 60 deg)
        restacks = self._calls("newstack")
        self.assertEqual(len(restacks), 3, restacks)
        for args in restacks:
            options = imod_standins.parse(args)
            self.assertIn("TS_01", options["-input"])
            self.assertEqual((options["-exclude"], options.get("-fromone")), ("40,41", True))
        self.assertEqual(len(self._calls("ctfphaseflip")), 6)
        self.assertEqual(len(self._calls("tilt")), 6)
        self.assertEqual(len(self._calls("trimvol")), 6)
        # the series are flagged CTF-corrected and re-stacked; the tomograms are not flagged
        self.assertTrue(all(ts.ctfCorrected() for ts in corrected))
        self.assertFalse(any(ts.ctfCorrected() for ts in rawTs))
        self.assertEqual(corrected.getTiltSeriesFromTsId("TS_01").getSize(), 39)
        self.checkTomograms(tomos, expectedSetSize=2, expectedSRate=PIXEL_SIZE,
                            expectedDimensions=[SHAPE_ZYX[2], SHAPE_ZYX[1], SHAPE_ZYX[0]],
                            hasOddEven=True, hasHalves=True, ctfCorrected=False)
        for tomogram in tomos:
            tsId = tomogram.getTsId()
            odd, even = tomogram.getHalfMaps(asList=True)
            self.assertTrue(odd.endswith(f"{tsId}_odd.mrc") and even.endswith(f"{tsId}_even.mrc"))
            with mrcfile.open(tomogram.getFileName(), permissive=True) as mrc:
                self.assertEqual((mrc.data.shape, mrc.data.dtype), (SHAPE_ZYX, np.int16))

    def _checkRefine(self, refine):
        """Tilt range and phase-flipped state of the refine run."""
        path = refine._getExtraPath(TOMOGRAMS_STAR)
        table = star.TomogramsTable.read(path)
        blocks = starfile.read(path, always_dict=True)
        rows = blocks.get(star.GLOBAL_BLOCK, next(iter(blocks.values())))
        names = [table.tomo_name(r) for r in range(len(table))]
        got = {name: (rows[star.TILT_MIN][r], rows[star.TILT_MAX][r], rows[star.DEFOCUS][r])
               for r, name in enumerate(names)}
        self.assertEqual(got, {"TS_01": (-60.0, 54.0, DEFOCUS_A["TS_01"]),
                               "TS_02": (-60.0, 60.0, DEFOCUS_A["TS_02"])})
        # IMOD's [odd, even] halves: half 1 the even map, half 2 the odd one
        for r, tsId in enumerate(names):
            self.assertTrue(str(table.path(r, star.TOMO_HALF1)).endswith(f"{tsId}_even.mrc"))
            self.assertTrue(str(table.path(r, star.TOMO_HALF2)).endswith(f"{tsId}_odd.mrc"))
        summary = "\n".join(refine._summary())
        self.assertIn("Tilt range TS_01: -60 to 54 deg (views enabled in the tilt series and its "
                      "CTF estimation)", summary)
        for tsId in TS_IDS:
            self.assertIn(f"Phase flipped {tsId}: yes (its tilt series (input) is flagged "
                          f"CTF-corrected)", summary)
        self.assertTrue(any("--isCTFflipped True" in c for c in self._coreCommands(refine)),
                        self._coreCommands(refine))
        with open(os.path.join(refine._getExtraPath("model"), "config.json")) as f:
            self.assertIn('"is_ctf_flipped": true', json.dumps(json.load(f)))
