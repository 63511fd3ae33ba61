"""The imaging model and its Fourier analysis: CTF, missing wedge, Fourier grids, normalisation, quality metrics and FSC weighting. Pure array functions, no file I/O."""
