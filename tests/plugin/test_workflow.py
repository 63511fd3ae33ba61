"""A real Scipion project, headless: simulated data -> imports -> IsoNet2 protocols.

Data come from ``isonet2core.simulation.simulate.simulate_dataset`` (the ``isonet2 simulate`` command):
full, even and odd tomograms with ground truth, IMOD ``.defocus`` files and tilt angles. They
are imported with tomo's protocols (three tomogram imports: full, even, odd; a tilt-series
import, which the CTF import needs to attach the estimations to - IsoNet2 never reads its
images; the CTF import from the IMOD files), then run through deconv -> make mask ->
denoise -> refine -> predict with tiny CPU settings. The plugin runs the core with the
interpreter of the tests (conftest sets ISONET2SCIPION_PYTHON).
"""
import os
from pathlib import Path

import mrcfile
import numpy as np
import tomo.protocols
from pyworkflow.tests import setupTestProject
from tomo.protocols.protocol_import_ctf import ImportChoice
from tomo.tests.test_base_centralized_layer import TestBaseCentralizedLayer

from isonet2core.io.model_file import ModelFile
from isonet2core.simulation.simulate import SimulationConfig, simulate_dataset
from isonet2scipion.constants import HALVES_LINKED, HALVES_NONE, HALVES_SEPARATE
from isonet2scipion.protocols import (
    ProtIsoNet2Deconv,
    ProtIsoNet2Denoise,
    ProtIsoNet2ImportModel,
    ProtIsoNet2MakeMask,
    ProtIsoNet2Predict,
    ProtIsoNet2Refine,
)
from isonet2scipion.tests.protocol_runs import ProtocolRuns

PIXEL_SIZE = 10.0
SHAPE_ZYX = (32, 64, 64)
N_TOMOS = 2
TILT_MIN, TILT_MAX, TILT_STEP = -60.0, 60.0, 3.0
# tiny CPU runs: serial steps (one Scipion thread), 2 CPU threads per core process, cube 16,
# one epoch of a few cubes, tiles without overlap in prediction
CPU = dict(useGpu=False, numberOfThreads=1, binThreads=2)
TINY_TRAINING = dict(arch=0, cube_size=16, epochs=1, number_subtomos=4, batch_size=4,
                     save_interval=1, padding_factor=1.0, **CPU)


class TestIsoNet2Workflow(ProtocolRuns, TestBaseCentralizedLayer):
    """One project, the whole chain; each stage checks its outputs."""

    @classmethod
    def setUpClass(cls):
        cls._cwd = os.getcwd()
        setupTestProject(cls)
        cls.dataDir = Path(cls.proj.getPath()).parent / f"{cls.projName}_data"
        cfg = SimulationConfig(shape=SHAPE_ZYX, pixel_size_a=PIXEL_SIZE, tilt_min_deg=TILT_MIN,
                               tilt_max_deg=TILT_MAX, tilt_step_deg=TILT_STEP,
                               defocus_a=30000.0, defocus_step_a=5000.0, dose_snr=30.0, seed=3)
        cls.records = simulate_dataset(cls.dataDir, cfg, n_tomograms=N_TOMOS)
        cls._writeTiltSeriesStacks()

    @classmethod
    def tearDownClass(cls):
        os.chdir(cls._cwd)

    @classmethod
    def _writeTiltSeriesStacks(cls):
        """Stacks for tomo's tilt-series import (the CTF import attaches to tilt series)."""
        n_tilts = int(round((TILT_MAX - TILT_MIN) / TILT_STEP)) + 1
        (cls.dataDir / "ts").mkdir(exist_ok=True)
        rng = np.random.default_rng(0)
        for rec in cls.records:
            with mrcfile.new(str(cls.dataDir / "ts" / f"{rec['name']}.mrc")) as mrc:
                mrc.set_data(rng.standard_normal((n_tilts, 16, 16)).astype(np.float32))
                mrc.voxel_size = PIXEL_SIZE

    # ------------------------------------------------------------------ helpers
    def _run(self, cls, **kwargs):
        """The mixin's run, then our protocols' summary and methods text checked."""
        prot = super()._run(cls, **kwargs)
        if cls.__module__.startswith("isonet2scipion"):
            for lines in (prot._summary(), prot._methods()):
                self.assertTrue(lines and all(isinstance(x, str) for x in lines), lines)
            print("\n".join(prot._summary() + prot._methods()))
        return prot

    def _importTomograms(self, folder):
        return self._run(tomo.protocols.ProtImportTomograms, objLabel=f"import {folder}",
                         filesPath=str(self.dataDir / folder), filesPattern="*.mrc",
                         samplingRate=PIXEL_SIZE, acquisitionAngleMin=TILT_MIN,
                         acquisitionAngleMax=TILT_MAX, step=TILT_STEP, voltage=300.0,
                         sphericalAberration=2.7, amplitudeContrast=0.1)

    def _assertInvalid(self, cls, expected, **kwargs):
        """The protocol refuses to run, with a message containing ``expected``."""
        errors = self.newProtocol(cls, **kwargs).validate()
        self.assertTrue(any(expected in e for e in errors),
                        msg=f"{cls.__name__}: expected an error with {expected!r}, got {errors}")

    def _checkModel(self, model, method):
        self.assertEqual(model.getMethod(), method)
        self.assertTrue(os.path.exists(model.getPath()), model.getPath())
        loaded = ModelFile.load(model.getPath())
        self.assertEqual((loaded.method, loaded.arch, loaded.cube_size),
                         (method, model.getArch(), model.getCubeSize()))

    def _officialModelFile(self, ourPath):
        """Our model file rewritten in the IsoNet2 program's layout (what its refine saves)."""
        import torch

        from isonet2core.nets.bn_unet import fold_inverted_contrast
        ckpt = ModelFile.load(ourPath)
        inverted = fold_inverted_contrast(ckpt.model_state)   # its own inverse
        path = self.dataDir / f"network_{ckpt.method}_{ckpt.arch}_{ckpt.cube_size}_full.pt"
        torch.save({"method": ckpt.method, "arch": ckpt.arch,
                    "cube_size": ckpt.cube_size, "CTF_mode": "None",
                    "do_phaseflip_input": True,
                    "model_state_dict": {"module." + k: v for k, v in inverted.items()},
                    "metrics": {"average_loss": [0.5]}}, str(path))
        return str(path)

    @staticmethod
    def _read(path):
        with mrcfile.open(path, permissive=True) as mrc:
            return np.asarray(mrc.data, dtype=np.float32)

    def _correlations(self, tomoSet):
        """Pearson correlation with the ground truth of each output and of its raw input."""
        def pearson(a, b):
            return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

        result = {}
        for item in tomoSet:
            name = item.getTsId()
            truth = self._read(self.dataDir / "ground_truth" / f"{name}.mrc")
            raw = self._read(self.dataDir / "full" / f"{name}.mrc")
            result[name] = (pearson(self._read(item.getFileName()), truth), pearson(raw, truth))
        return result

    # ------------------------------------------------------------------ the chain
    def test_workflow(self):
        expectedDims = [SHAPE_ZYX[2], SHAPE_ZYX[1], SHAPE_ZYX[0]]
        full = self._importTomograms("full").Tomograms
        even = self._importTomograms("even").Tomograms
        odd = self._importTomograms("odd").Tomograms
        tsImport = self._importTiltSeries(self.dataDir / "ts", TILT_MIN, TILT_MAX, TILT_STEP, PIXEL_SIZE)
        ctfImport = self._run(tomo.protocols.ProtImportTsCTF, importFrom=ImportChoice.IMOD.value,
                              filesPath=str(self.dataDir / "ctf"), filesPattern="*.defocus",
                              inputSetOfTiltSeries=tsImport.outputTiltSeries)
        ctfs = ctfImport.CTFs

        # deconv: CTF from the IMOD files (defocus at the tilt nearest 0)
        # the tilt series the tomograms came from: not phase flipped (without them, "auto"
        # cannot tell and is refused)
        self._assertInvalid(ProtIsoNet2Deconv, "unknown for tomo_001, tomo_002",
                            inputTomograms=full, inputCtfs=ctfs)
        deconv = self._run(ProtIsoNet2Deconv, inputTomograms=full, inputCtfs=ctfs,
                           inputTiltSeries=tsImport.outputTiltSeries,
                           numberOfThreads=3, binThreads=1)
        # deconvolution corrects the CTF: the output says so
        self.checkTomograms(deconv.tomograms, expectedSetSize=N_TOMOS, expectedSRate=PIXEL_SIZE,
                            expectedDimensions=expectedDims, ctfCorrected=True)
        self.assertEqual(sorted(deconv.tomograms.getTSIds()), [r["name"] for r in self.records])
        # Continue re-runs only what changed: nothing, then the per-tomogram steps
        outputs = [t.getFileName() for t in deconv.tomograms]
        stamps = [os.path.getmtime(f) for f in outputs]
        self.launchProtocol(deconv)
        self.assertEqual([os.path.getmtime(f) for f in outputs], stamps)
        deconv.snrfalloff.set(0.8)
        self.launchProtocol(deconv)
        self.assertTrue(all(os.path.getmtime(f) > s for f, s in zip(outputs, stamps)))
        self.assertEqual(deconv.tomograms.getSize(), N_TOMOS)

        # make mask on the deconvolved tomograms
        mask = self._run(ProtIsoNet2MakeMask, inputTomograms=deconv.tomograms,
                         numberOfThreads=3, binThreads=1)
        self.checkTomoMasks(mask.tomoMasks, expectedSetSize=N_TOMOS, expectedSRate=PIXEL_SIZE,
                            expectedDimensions=expectedDims)
        for tomoMask in mask.tomoMasks:
            values = np.unique(self._read(tomoMask.getFileName()))
            self.assertTrue(set(values.tolist()) <= {0.0, 1.0} and values.size == 2)

        # what would fail later is refused before running, naming the items
        separate = dict(halvesSource=HALVES_SEPARATE, inputEven=even, inputOdd=odd)
        self._assertInvalid(ProtIsoNet2Denoise, "without even/odd half maps: tomo_001, tomo_002",
                            halvesSource=HALVES_LINKED, inputTomograms=full)
        self._assertInvalid(ProtIsoNet2Refine, "no defocus for tomo_001, tomo_002",
                            CTF_mode=3, **separate)
        self._assertInvalid(ProtIsoNet2Refine, "multiple of 16", cube_size=40, **separate)
        self._assertInvalid(ProtIsoNet2Refine, "ema_decay must be in (0, 1)", ema_decay=1.0, **separate)
        self._assertInvalid(ProtIsoNet2Deconv, "tilt range", inputTomograms=full, inputCtfs=ctfs,
                            tiltFromAcquisition=False, tilt_min=50.0, tilt_max=-50.0)
        self._assertInvalid(ProtIsoNet2Deconv, "no defocus", inputTomograms=full)

        # denoise: Noise2Noise on the separately imported halves, applied right away
        denoise = self._run(ProtIsoNet2Denoise, **separate, **TINY_TRAINING, doPredict=True)
        self.assertEqual(sorted(denoise.tomograms.getTSIds()), [r["name"] for r in self.records])
        self._checkModel(denoise.model, "n2n")
        self.checkTomograms(denoise.tomograms, expectedSetSize=N_TOMOS,
                            expectedSRate=PIXEL_SIZE, expectedDimensions=expectedDims,
                            hasOddEven=True, hasHalves=True)
        # its output carries linked halves stored [odd, even]; they are recognised by name
        linked = self.newProtocol(ProtIsoNet2Refine, halvesSource=HALVES_LINKED,
                                  inputTomograms=denoise.tomograms)
        entries, errors = linked._collectEntries()
        self.assertEqual(errors, [])
        for entry in entries:
            self.assertTrue(entry.even.endswith("_denoised_half1.mrc"), entry.even)
            self.assertTrue(entry.odd.endswith("_denoised_half2.mrc"), entry.odd)

        # refine as IsoNet1/IsoNet2 users do for single maps: isonet2 on the deconvolved
        # tomograms, cubes drawn inside the masks; then predict with its model
        refine = self._run(ProtIsoNet2Refine, halvesSource=HALVES_NONE,
                           inputTomograms=deconv.tomograms, inputMasks=mask.tomoMasks,
                           **TINY_TRAINING, doPredict=False)
        self._checkModel(refine.model, "isonet2")
        # the same file imported: method, arch and cube from its name, the rest from config.json
        imported = self._run(ProtIsoNet2ImportModel, modelFile=os.path.abspath(refine.model.getPath()),
                             method=1, arch=2, cube_size=96, epochs=7)
        self._checkModel(imported.model, "isonet2")
        self.assertEqual((imported.model.getArch(), imported.model.getCubeSize(),
                          imported.model.getEpochs(), imported.model.getCtfMode()),
                         ("unet-small", 16, 1, None))
        predict = self._run(ProtIsoNet2Predict, halvesSource=HALVES_NONE,
                            inputTomograms=deconv.tomograms, inputModel=refine.model,
                            padding_factor=1.0, **CPU)
        # a network without a CTF mode keeps its input's flag (the deconvolved maps')
        self.checkTomograms(predict.tomograms, expectedSetSize=N_TOMOS,
                            expectedSRate=PIXEL_SIZE, expectedDimensions=expectedDims,
                            ctfCorrected=True)
        self.assertEqual(sorted(predict.tomograms.getTSIds()), [r["name"] for r in self.records])
        # the chain (CTF deconvolution, then the network) brings the maps closer to the
        # ground truth than the raw reconstructions; one epoch of a few cubes on the CPU adds
        # little on its own, so most of the gain here is the deconvolution's
        for name, (corrected, raw) in self._correlations(predict.tomograms).items():
            print(f"{name}: correlation with the ground truth {raw:.3f} raw -> "
                  f"{corrected:.3f} deconv + IsoNet2")
            self.assertGreater(corrected, raw + 0.1)

        # the same network in a file laid out as the IsoNet2 program writes it (its keys, DDP's
        # prefix, its inverted contrast, its file name), imported and run by the predict
        # protocol: predicted with the program's conventions (its input filter: the wedge mask
        # cut to the Nyquist sphere; cube 16 is below what its tiling takes, so our tiling):
        # close to the maps of our file, not equal (the core's tests check the conventions)
        official = self._officialModelFile(refine.model.getPath())
        importedOfficial = self._run(ProtIsoNet2ImportModel, modelFile=official, method=1,
                                     arch=2, cube_size=96, epochs=1)
        self.assertEqual((importedOfficial.model.getMethod(), importedOfficial.model.getArch(),
                          importedOfficial.model.getCubeSize()), ("isonet2", "unet-small", 16))
        predictOfficial = self._run(ProtIsoNet2Predict, halvesSource=HALVES_NONE,
                                    inputTomograms=deconv.tomograms,
                                    inputModel=importedOfficial.model, padding_factor=1.0, **CPU)
        ours = {t.getTsId(): self._read(t.getFileName()) for t in predict.tomograms}
        for item in predictOfficial.tomograms:
            r = float(np.corrcoef(self._read(item.getFileName()).ravel(),
                                  ours[item.getTsId()].ravel())[0, 1])
            print(f"{item.getTsId()}: the program file's map vs ours: Pearson {r:.4f}")
            self.assertGreater(r, 0.99)     # measured 0.998: the sphere-cut input filter
            self.assertLess(r, 1.0 - 1e-6)  # and not our conventions
