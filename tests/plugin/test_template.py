"""The workflow template isonet2_standard.json.template: found by pyworkflow's template
loader, its fields filled the way `scipion template` does, and loaded into a project
(project.loadProtocols, what the GUI's template import calls) as the expected graph."""
import json
from pathlib import Path

import pytest
from pyworkflow.template import TemplateList
from pyworkflow.tests import BaseTest, setupTestProject

TEMPLATE_ID = "isonet2scipion-isonet2_standard"
# the graph, by role; pyworkflow 3.11 drops the labels of loaded protocols (Step.__init__ does
# not pass objLabel on), so roles are told apart by class and, for the imports, by folder
EXPECTED = {  # role: (class, {input attribute: (role of its source, output name)})
    "even": ("ProtImportTomograms", {}),
    "odd": ("ProtImportTomograms", {}),
    "tilt_series": ("ProtImportTs", {}),
    "ctf": ("ProtImportTsCTF", {"inputSetOfTiltSeries": ("tilt_series", "outputTiltSeries")}),
    "mask": ("ProtIsoNet2MakeMask", {"inputTomograms": ("even", "Tomograms")}),
    "refine": ("ProtIsoNet2Refine", {"inputEven": ("even", "Tomograms"),
                                     "inputOdd": ("odd", "Tomograms"),
                                     "inputCtfs": ("ctf", "CTFs"),
                                     "inputMasks": ("mask", "tomoMasks")}),
    "predict": ("ProtIsoNet2Predict", {"inputEven": ("even", "Tomograms"),
                                       "inputOdd": ("odd", "Tomograms"),
                                       "inputCtfs": ("ctf", "CTFs"),
                                       "inputModel": ("refine", "model")}),
}
ROLE_OF_CLASS = {"ProtImportTs": "tilt_series", "ProtImportTsCTF": "ctf",
                 "ProtIsoNet2MakeMask": "mask", "ProtIsoNet2Refine": "refine",
                 "ProtIsoNet2Predict": "predict"}


def _template():
    templates = TemplateList()
    templates.addPluginTemplates(TEMPLATE_ID)
    assert [t.getObjId() for t in templates.templates] == [TEMPLATE_ID]
    return templates.templates[0]


def _filled(tmp_path):
    template = _template()
    template.replaceEnvVariables()
    template.parseContent()
    aliases = {p.getAlias(): p for p in template.getParams().values()}
    assert set(aliases) == {"even", "odd", "pixel_size", "pixel_size_odd", "tilt_series",
                            "ts_pixel_size", "ctf", "epochs", "gpu", "gpu_predict"}
    values = {"pixel_size": "13.6", "pixel_size_odd": "13.6", "ts_pixel_size": "3.4",
              "epochs": "30", "gpu": "0 1", "gpu_predict": "0"}
    for alias in ("even", "odd", "tilt_series", "ctf"):
        (tmp_path / alias).mkdir()
        values[alias] = str(tmp_path / alias)
    for alias, value in values.items():
        assert template.setParamValue(alias, value) == 1
    return Path(template.createTemplateFile()), values


def test_template_is_found_and_described():
    template = _template()
    assert "isonet2 refine" in template.description and "make mask" in template.description


def test_template_fields_fill_to_valid_json(tmp_path):
    path, values = _filled(tmp_path)
    protocols = json.loads(path.read_text())
    by_label = {p["object.label"]: p for p in protocols}
    assert by_label["import even tomograms"]["filesPath"] == values["even"]
    assert by_label["import even tomograms"]["samplingRate"] == pytest.approx(13.6)
    assert by_label["isonet2 - refine"]["epochs"] == 30
    assert by_label["isonet2 - refine"]["gpuList"] == "0 1"


class TestTemplateLoadsIntoProject(BaseTest):
    @classmethod
    def setUpClass(cls):
        setupTestProject(cls)

    def test_graph(self):
        import tempfile
        path, values = _filled(Path(tempfile.mkdtemp(dir=self.proj.getPath())))
        self.proj.loadProtocols(str(path))
        roles = {}
        for run in self.proj.getRuns():
            role = ROLE_OF_CLASS.get(run.getClassName())
            if role is None:                       # an import of tomograms: by its folder
                role = {values["even"]: "even", values["odd"]: "odd"}[run.filesPath.get()]
            self.assertNotIn(role, roles)
            roles[role] = run
        self.assertEqual(set(roles), set(EXPECTED))
        for role, (className, inputs) in EXPECTED.items():
            prot = roles[role]
            self.assertEqual(prot.getClassName(), className)
            for attr, (source, output) in inputs.items():
                pointer = getattr(prot, attr)
                self.assertEqual(pointer.getObjValue().getObjId(), roles[source].getObjId(),
                                 (role, attr))
                self.assertEqual(pointer.getExtended(), output, (role, attr))
        refine = roles["refine"]
        self.assertEqual((refine.epochs.get(), refine.gpuList.get()), (30, "0 1"))
        self.assertEqual(roles["tilt_series"].samplingRate.get(), 3.4)
        # core options the template does not state take the core's defaults (through the forms)
        from isonet2core.config import CTF_MODES, PredictConfig, TrainConfig
        self.assertEqual(CTF_MODES[refine.CTF_mode.get()], "network")
        self.assertEqual(refine.save_interval.get(), 50)
        self.assertEqual((refine.cube_size.get(), refine.learning_rate.get(), refine.fill_reuse.get(),
                          refine.mw_weight.get(), refine.padding_factor.get(),
                          roles["predict"].predict_batch_size.get()),
                         (TrainConfig.cube_size, TrainConfig.learning_rate, TrainConfig.fill_reuse,
                          TrainConfig.mw_weight, PredictConfig.padding_factor, PredictConfig.batch_size))


def test_template_states_only_what_differs_from_the_core_defaults():
    """The template repeats no core default: an option's default lives in its config field, and
    an option added there reaches a loaded template through the form."""
    from isonet2scipion.protocols.core_options import (
        MASK_OPTIONS,
        PREDICT_OPTIONS,
        REFINE_OPTIONS,
        TRAIN_OPTIONS,
    )
    options = {"ProtIsoNet2MakeMask": MASK_OPTIONS, "ProtIsoNet2Predict": PREDICT_OPTIONS,
               "ProtIsoNet2Refine": TRAIN_OPTIONS + REFINE_OPTIONS + PREDICT_OPTIONS}
    text = Path(_template().templatePath).read_text()
    import re
    protocols = json.loads(re.sub(r"~[^~]*~", "null", text[text.index("["):]))
    stated = []
    for prot in protocols:
        for opt in options.get(prot["object.className"], ()):
            if opt.attr in prot and prot[opt.attr] is not None:
                assert prot[opt.attr] != opt.default, (prot["object.className"], opt.attr)
                stated.append(opt.attr)
    assert sorted(stated) == ["CTF_mode", "save_interval"]
