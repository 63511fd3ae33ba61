"""The program, its versions and the references named in the protocols' Methods and citations.

The methods text says what ran: the IsoNet2 method [Liu2025IsoNet2] as implemented by
``isonet2core`` (a PyTorch implementation of the method, not the authors' IsoNet2 program) at
its version, run from Scipion by this plugin at its version. Deconvolution and the sampling
mask are IsoNet's (IsoNet1, [Liu2022IsoNet]), which IsoNet2 keeps. The keys are entries of
:mod:`isonet2scipion.bibtex`.
"""
from importlib.metadata import PackageNotFoundError, version
from typing import List

from isonet2scipion.constants import CORE_VERSION, PIP_DISTRIBUTION

ISONET2_REF = "Liu2025IsoNet2"     # the IsoNet2 preprint (bioRxiv)
ISONET_REF = "Liu2022IsoNet"       # IsoNet, Nat. Commun. 2022: deconvolution and masks

REFERENCES = [ISONET2_REF]                      # every protocol
DECONV_REFERENCES = [ISONET2_REF, ISONET_REF]   # CTF deconvolution and the sampling mask


def pluginVersion() -> str:
    """The installed plugin distribution's version (the package's own when not installed)."""
    try:
        return version(PIP_DISTRIBUTION)
    except PackageNotFoundError:
        return CORE_VERSION


def programSentence() -> str:
    """The Methods sentence naming the program and both versions."""
    return (f"Processing used the IsoNet2 method [{ISONET2_REF}] as implemented in isonet2core "
            f"{CORE_VERSION} (PyTorch), run from Scipion by the plugin {PIP_DISTRIBUTION} "
            f"{pluginVersion()}.")


def withProgram(lines: List[str]) -> List[str]:
    """A protocol's methods lines followed by :func:`programSentence` (none before outputs)."""
    return list(lines) + [programSentence()] if lines else []
