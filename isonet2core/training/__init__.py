"""Training of the IsoNet2 networks (``refine`` and ``denoise``).

One concept per module: :mod:`.sampler` (cube coordinates and extraction), :mod:`.rotations`
(90-degree and arbitrary rotations of cubes and Fourier masks), :mod:`.targets` (wedge-filled,
rotated inputs and targets per method and CTF mode), :mod:`.loss` (plain and masked Fourier
losses), :mod:`.trainer` (the loop, checkpoints, resume) and :mod:`.distributed` (several GPUs).
"""
