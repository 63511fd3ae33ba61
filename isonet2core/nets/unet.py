"""The plain 3D U-Net (``plain-unet-*``): the paper's layout without normalisation layers.

The default networks (``unet-*``) are the batch-normalised ones of :mod:`isonet2core.nets.bn_unet`
(measured better on the realistic lamellae, and the IsoNet2 program's own layout); this family
is about 1.8x faster per training step on a GPU (0.025 vs 0.044 s, unet-small, cube 48, batch 4,
H200) and stays available as ``plain-unet-small|medium|large``.

Layout, input and output ``(b, 1, z, y, x)``; each spatial size a multiple of 16 (four halvings)::

    level 0  block(1 -> c0)       ---------------------------------- concat -> block(2c0 -> c0) -> 1x1x1 conv -> + input
      down: conv 2x2x2 stride 2 (c0 -> c1)                     up: transposed conv 2x2x2 stride 2 (c1 -> c0)
    level 1  block(c1 -> c1)      ------------------------ concat -> block(2c1 -> c1)
      ...                                                   ...
    level 3  block(c3 -> c3)      ---- concat -> block(2c3 -> c3)
      down (c3 -> c4)                  up (c4 -> c3)
    bottom   block(c4 -> c4)

* a block is three 3x3x3 convolutions (padding 1, with bias), each followed by LeakyReLU
  (negative slope ``LEAKY_SLOPE`` = 0.1);
* down-sampling: a strided 2x2x2 convolution (stride 2) followed by LeakyReLU, doubling the
  channels; up-sampling: a 2x2x2 transposed convolution (stride 2) followed by LeakyReLU,
  halving them; skip connections concatenate the encoder features of the same level
  (``[up, skip]`` along the channel axis);
* no normalisation layers: inputs are globally normalised tomograms (normalize.py), batches are
  small (4-16 cubes) where batch statistics would be noisy, and plain convolutions are the
  fastest choice on CPU and under mixed precision;
* residual output ``output = input + head(features)``, the head a 1x1x1 convolution to one
  channel. The head is initialised to zero, so a fresh network is the identity: the first
  missing-wedge-filled targets of refine are then the data themselves rather than noise from
  random weights. The other layers use PyTorch's default initialisation.

Channel ladders (:data:`isonet2core.nets.registry.LADDERS`): channels double at each down-sampling, as in the paper,
capped at 320 (the usual 3D U-Net cap, which keeps the deep levels - where the volume is tiny -
from dominating the parameter count and the checkpoint size). Parameter counts (weights +
biases; ``count_parameters``; tests/core/test_unet.py recomputes them from the ladders)::

    unet-small   (16, 32, 64, 128, 256)     10,113,841
    unet-medium  (32, 64, 128, 256, 320)    26,722,145   (default: the paper's 32-filter base)
    unet-large   (64, 128, 256, 320, 320)   47,408,065
"""
from __future__ import annotations

from typing import List, Tuple, cast

import torch
from torch import nn

N_LEVELS = 4
SIZE_MULTIPLE = 2 ** N_LEVELS  # every spatial size of the input must be a multiple of 16
LEAKY_SLOPE = 0.1


def _block(in_channels: int, channels: int) -> nn.Sequential:
    """Three 3x3x3 convolutions with LeakyReLU: ``(b, in, z, y, x) -> (b, channels, z, y, x)``."""
    layers: List[nn.Module] = []
    for i in range(3):
        layers.append(nn.Conv3d(in_channels if i == 0 else channels, channels, kernel_size=3, padding=1))
        layers.append(nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
    return nn.Sequential(*layers)


def check_channels(channels) -> Tuple[int, ...]:
    """Check a channel ladder.

    Parameters
    ----------
    channels : sequence of int
        ``N_LEVELS + 1`` positive integers.

    Returns
    -------
    tuple of int
        The ladder.

    Raises
    ------
    ValueError
        Any other value.
    """
    if len(channels) != N_LEVELS + 1 or any(int(c) < 1 for c in channels):
        raise ValueError(f"channels must be {N_LEVELS + 1} positive integers, got {channels}")
    return tuple(int(c) for c in channels)


def check_batch(x: torch.Tensor) -> None:
    """Check a network input.

    Parameters
    ----------
    x : torch.Tensor
        ``(b, 1, z, y, x)``, spatial sizes multiples of 16.

    Raises
    ------
    ValueError
        Any other shape.
    """
    if x.dim() != 5 or x.shape[1] != 1:
        raise ValueError(f"expected a (b, 1, z, y, x) batch, got shape {tuple(x.shape)}")
    if any(s % SIZE_MULTIPLE for s in x.shape[2:]):
        raise ValueError(f"spatial sizes must be multiples of {SIZE_MULTIPLE}, got {tuple(x.shape[2:])}")


class UNet3D(nn.Module):
    """Residual 3D U-Net, ``(b, 1, z, y, x) -> (b, 1, z, y, x)``; see the module docstring."""

    def __init__(self, channels: Tuple[int, ...]):
        super().__init__()
        self.channels = check_channels(channels)
        c = self.channels
        self.encoders = nn.ModuleList(_block(1 if i == 0 else c[i], c[i]) for i in range(N_LEVELS))
        self.downs = nn.ModuleList(
            nn.Sequential(nn.Conv3d(c[i], c[i + 1], kernel_size=2, stride=2),
                          nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
            for i in range(N_LEVELS))
        self.bottom = _block(c[N_LEVELS], c[N_LEVELS])
        self.ups = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose3d(c[i + 1], c[i], kernel_size=2, stride=2),
                          nn.LeakyReLU(LEAKY_SLOPE, inplace=True))
            for i in range(N_LEVELS))
        self.decoders = nn.ModuleList(_block(2 * c[i], c[i]) for i in range(N_LEVELS))
        self.head = nn.Conv3d(c[0], 1, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        assert self.head.bias is not None
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the network.

        Parameters
        ----------
        x : torch.Tensor
            ``(b, 1, n, n, n)``, ``n`` a multiple of 16.

        Returns
        -------
        torch.Tensor
            ``(b, 1, n, n, n)``.
        """
        check_batch(x)
        skips = []
        h = x
        for enc, down in zip(self.encoders, self.downs):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.bottom(h)
        for i in reversed(range(N_LEVELS)):
            h = self.ups[i](h)
            h = self.decoders[i](torch.cat([h, skips[i]], dim=1))
        return x + self.head(h)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (weights and biases).

    Parameters
    ----------
    model : nn.Module
        The network.

    Returns
    -------
    int
        The count.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def compiled(model: nn.Module, enabled: bool) -> nn.Module:
    """A network as it is called: ``torch.compile(model)`` when enabled (the IsoNet2 program's
    ``--compile_model``; the first calls of each input shape and mode compile). The compiled
    module shares the weights; state dicts are taken from ``model``.

    Parameters
    ----------
    model : nn.Module
        The network.
    enabled : bool
        Compile it.

    Returns
    -------
    nn.Module
        The compiled module, or ``model`` itself.
    """
    return cast(nn.Module, torch.compile(model)) if enabled else model
