"""Methods text and citations (issue 26): the Methods name the program and both versions;
every protocol's references resolve to entries of isonet2scipion/bibtex.py (IsoNet2's
preprint everywhere, IsoNet 2022 for deconvolution and the sampling mask)."""
import pytest
from pyworkflow.plugin import Domain

from isonet2scipion.constants import CORE_VERSION, PIP_DISTRIBUTION
from isonet2scipion.methods import ISONET2_REF, ISONET_REF, pluginVersion, programSentence

MODULE = Domain.getPluginModule("isonet2scipion")
PROTOCOLS = sorted(name for name in Domain.getProtocols() if name.startswith("ProtIsoNet2"))


def test_bibtex_entries():
    bib = MODULE._bibtex
    assert set(bib) == {ISONET2_REF, ISONET_REF}
    isonet2 = bib[ISONET2_REF]
    assert isonet2["title"] == ("IsoNet2 determines cellular structures at submolecular "
                                "resolution without averaging")
    assert isonet2["year"] == "2025" and "bioRxiv" in isonet2["journal"]
    assert isonet2["author"].startswith("Liu, Yun-Tao and Fan, Hongcheng")
    isonet = bib[ISONET_REF]
    assert isonet["title"] == "Isotropic reconstruction for electron tomography with deep learning"
    assert (isonet["journal"], isonet["year"], isonet["volume"], isonet["pages"]) == \
        ("Nature Communications", "2022", "13", "6482")
    assert isonet["doi"] == "https://doi.org/10.1038/s41467-022-33957-8"
    assert MODULE._references == [ISONET2_REF]


def test_program_sentence_names_both_versions():
    sentence = programSentence()
    assert f"isonet2core {CORE_VERSION}" in sentence
    assert f"{PIP_DISTRIBUTION} {pluginVersion()}" in sentence and f"[{ISONET2_REF}]" in sentence


@pytest.mark.parametrize("name", PROTOCOLS)
def test_citations_resolve(name):
    assert len(PROTOCOLS) == 6
    prot = Domain.getProtocols()[name]()
    keys = prot._citations()
    assert ISONET2_REF in keys and set(keys) <= set(MODULE._bibtex)
    if name in ("ProtIsoNet2Deconv", "ProtIsoNet2MakeMask"):
        assert ISONET_REF in keys
    # an unknown key comes back as itself; a known one as "[[link][Liu et al., journal, year]]"
    cites = {**prot.getCitations(), **prot.getPackageCitations()}
    assert cites and all(text.startswith("[[http") and "Liu et al., " in text
                         for text in cites.values()), cites


def test_methods_name_the_program_and_its_version(demo_project):
    runs, _ = demo_project
    for name in ("ProtIsoNet2MakeMask", "ProtIsoNet2Refine", "ProtIsoNet2Predict"):
        lines = runs[name]._methods()
        assert lines[-1] == programSentence(), name
        parsed = "\n".join(runs[name].getParsedMethods())
        assert f"isonet2core {CORE_VERSION}" in parsed and pluginVersion() in parsed
        assert " [Liu20" not in parsed, parsed       # every key became a link [[url][key]]
    assert f"[{ISONET_REF}]" in runs["ProtIsoNet2MakeMask"]._methods()[0]
