"""What the plugin's protocol tests share: run a protocol that must validate, collect the
validation errors of one that must not, and read the core commands a protocol ran."""


class ProtocolRuns:
    """Mixin for ``pyworkflow.tests.BaseTest`` subclasses (``newProtocol``, ``launchProtocol``)."""

    def _run(self, cls, **kwargs):
        prot = self.newProtocol(cls, **kwargs)
        errors = prot.validate()
        self.assertEqual(errors, [], msg=f"{cls.__name__} does not validate: {errors}")
        self.launchProtocol(prot)
        return prot

    def _errors(self, cls, **kwargs):
        return self.newProtocol(cls, **kwargs).validate()

    def _importTiltSeries(self, folder, tiltMin, tiltMax, tiltStep, pixelSize):
        """tomo's tilt-series import of ``folder/{TS}.mrc`` at a 300 kV, Cs 2.7 mm microscope."""
        import tomo.protocols
        return self._run(tomo.protocols.ProtImportTs, filesPath=str(folder), filesPattern="{TS}.mrc",
                         anglesFrom=0, minAngle=tiltMin, maxAngle=tiltMax, stepAngle=tiltStep,
                         voltage=300.0, sphericalAberration=2.7, amplitudeContrast=0.1,
                         samplingRate=pixelSize, magnification=50000, tiltAxisAngle=0.0,
                         doseInitial=0.0, dosePerFrame=2.0)

    @staticmethod
    def _coreCommands(prot):
        """The core commands a protocol of ours ran, from its log (pyworkflow writes each
        argument in double quotes)."""
        with open(prot.getStdoutLog()) as f:
            return [line.replace('"', "") for line in f
                    if '"refine"' in line or '"predict"' in line]
