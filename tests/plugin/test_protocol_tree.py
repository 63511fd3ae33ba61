"""The protocols appear where tomography users look (issue 26): in scipion-em-tomo's own
sections of the Tomography view (Imports; Tomograms > Preprocess; Tomograms > Denoise, beside
cryoCARE), merged into tomo's tree by Scipion rather than in sections of our own."""
import json
from configparser import ConfigParser
from pathlib import Path

import tomo
from pyworkflow.plugin import Domain

import isonet2scipion

WHERE = {"ProtIsoNet2ImportModel": ("Imports",),
         "ProtIsoNet2Deconv": ("Tomograms", "Preprocess"),
         "ProtIsoNet2MakeMask": ("Tomograms", "Preprocess"),
         "ProtIsoNet2Denoise": ("Tomograms", "Denoise"),
         "ProtIsoNet2Refine": ("Tomograms", "Denoise"),
         "ProtIsoNet2Predict": ("Tomograms", "Denoise")}


def _tree(package):
    parser = ConfigParser()
    parser.optionxform = str
    parser.read(Path(package.__file__).with_name("protocols.conf"))
    return json.loads(parser.get("PROTOCOLS", "Tomography"))


def _walk(children, path=()):
    """(path of section/group texts, protocol class name) of every protocol."""
    for child in children:
        if child["tag"] == "protocol":
            yield path, child["value"]
        else:
            yield from _walk(child.get("children", []), path + (child["text"],))


def _containers(children, path=()):
    """Every path of section/group texts of a tree."""
    for child in children:
        if child["tag"] != "protocol":
            here = path + (child["text"],)
            yield here
            yield from _containers(child.get("children", []), here)


def test_every_protocol_sits_in_a_section_of_tomo():
    tomoPaths = set(_containers(_tree(tomo)))
    ours = list(_walk(_tree(isonet2scipion)))
    assert sorted(name for _, name in ours) == sorted(WHERE)
    assert sorted(WHERE) == sorted(n for n in Domain.getProtocols() if n.startswith("ProtIsoNet2"))
    for path, name in ours:
        assert path == WHERE[name], (name, path)
        assert path in tomoPaths, f"{name}: {path} is not one of tomo's sections"
    # no section or group of our own
    assert set(_containers(_tree(isonet2scipion))) <= tomoPaths


def test_scipion_merges_them_into_tomos_groups():
    """Scipion's own loader: tomo's Denoise group holds our three training/prediction
    protocols (one group, not a second one of the same name)."""
    import pyworkflow as pw
    from pyworkflow.gui.project.viewprotocols_extra import ProtocolTreeConfig

    view = ProtocolTreeConfig.load(Domain, pw.Config.SCIPION_PROTOCOLS)["Tomography"]

    def find(node, texts):
        for text in texts:
            matches = [c for c in node.childs if c.text == text]
            assert len(matches) == 1, (text, [c.text for c in node.childs])
            node = matches[0]
        return node

    for name, path in WHERE.items():
        values = [c.value for c in find(view, path).childs]
        assert name in values, (name, path, values)
    assert "ProtTomoApplyTomoMask" in [c.value for c in find(view, ("Tomograms", "Preprocess")).childs]
