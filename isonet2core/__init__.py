"""isonet2core: a PyTorch implementation of the IsoNet2 cryo-ET restoration method.

Conventions used throughout the package (fixed here, once):

* Volumes are ``(z, y, x)`` numpy arrays / tensors, exactly as ``mrcfile`` returns them.
  Batches are ``(b, c, z, y, x)``.
* The tilt axis is ``y``; the electron beam at 0 degrees runs along ``z``.
* Fourier space uses ``numpy.fft`` / ``torch.fft`` layouts (DC at index 0, no shift) unless a
  function says otherwise; frequencies are in cycles per voxel (Nyquist = 0.5).
* Defocus is in Angstrom at 0 degrees tilt, underfocus positive.

This package never imports Scipion: it runs in the plugin's managed environment.
"""

__version__ = "0.1.0"
