"""Scipion objects of the plugin."""
import pyworkflow.object as pwobj
from pwem.objects import EMObject

from isonet2core.config import method_traits


class IsoNet2Model(EMObject):
    """A trained IsoNet2 network: the checkpoint file written by ``isonet2 refine`` or
    ``isonet2 denoise`` (``network_{method}_{arch}_{cube}_full.pt``) and what it was trained
    with. ``method`` is ``isonet2-n2n`` (even/odd halves), ``isonet2`` (single maps) or
    ``n2n`` (plain Noise2Noise denoising); ``ctfMode`` is None, phase_only, wiener or network."""

    def __init__(self, path=None, method=None, arch=None, cubeSize=None, ctfMode=None,
                 epochs=None, **kwargs):
        EMObject.__init__(self, **kwargs)
        self._path = pwobj.String(path)
        self._method = pwobj.String(method)
        self._arch = pwobj.String(arch)
        self._cubeSize = pwobj.Integer(cubeSize)
        self._ctfMode = pwobj.String(ctfMode)
        self._epochs = pwobj.Integer(epochs)

    def getPath(self):
        return self._path.get()

    def setPath(self, path):
        self._path.set(path)

    def getMethod(self):
        return self._method.get()

    def getArch(self):
        return self._arch.get()

    def getCubeSize(self):
        return self._cubeSize.get()

    def getCtfMode(self):
        """None when the network was trained without CTF handling."""
        return self._ctfMode.get()

    def getEpochs(self):
        return self._epochs.get()

    def isDenoiser(self):
        """True for plain Noise2Noise models: prediction writes denoised maps."""
        return not method_traits(self.getMethod()).fills_wedge

    def __str__(self):
        return (f"IsoNet2Model ({self.getMethod()}, {self.getArch()}, cube "
                f"{self.getCubeSize()}, CTF {self.getCtfMode()}, {self.getEpochs()} epochs)")
