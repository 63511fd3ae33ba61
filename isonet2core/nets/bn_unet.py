"""3D U-Net with batch normalisation, laid out as the official IsoNet2 program's ``unet-*``.

Our own implementation of that layout (so that its checkpoints' state dictionaries load by
name), input and output ``(b, 1, z, y, x)``, each spatial size a multiple of 16::

    first conv 3x3x3 (1 -> c0, bias)
    level n = 0..3:  block(c_n -> c_n, 3 convs)  --------------- concat [skip, up] -> block(2 c_n -> c_n, 3 convs)
                     down: conv 2x2x2 stride 2 (c_n -> c_n+1) + BN + LeakyReLU      up: transposed conv 2x2x2 (c_n+1 -> c_n) + LeakyReLU
    bottleneck       block(c4 -> c4, 2 convs)
    final conv 3x3x3 (c0 -> 1, bias), plus the input (residual)

A block's convolution has no bias and is followed by ``BatchNorm3d`` and ``LeakyReLU`` (slope
0.01). Channel ladders (:data:`isonet2core.nets.registry.LADDERS`) are the official 16/32/64-filter bases
``(16, 32, 64, 128, 256)``, ``(32, 64, 128, 256, 320)``, ``(64, 128, 256, 320, 320)``.
Parameter names (``encoder.module_dict.conv_stack_0.net.0.weight``, ``decoder.module_dict.
deconv_3.weight``, ``final.weight``, ...) are those of the official checkpoints.

Batch statistics: in training mode every forward pass (also the no-grad wedge-filling
predictions) normalises by the batch; prediction runs in eval mode on the running averages.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import nn

from isonet2core.nets.unet import N_LEVELS, check_batch, check_channels

LEAKY_SLOPE = 0.01


class _ConvBlock(nn.Module):
    """``n_conv`` x (conv without bias, BatchNorm, LeakyReLU); parameters under ``net``."""

    def __init__(self, in_channels: int, out_channels: int, n_conv: int, kernel_size: int = 3,
                 stride: int = 1, padding: int = 1):
        super().__init__()
        layers: List[nn.Module] = []
        for i in range(n_conv):
            layers += [nn.Conv3d(in_channels if i == 0 else out_channels, out_channels, kernel_size,
                                 stride=stride, padding=padding, bias=False),
                       nn.BatchNorm3d(out_channels), nn.LeakyReLU(LEAKY_SLOPE, inplace=True)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _Encoder(nn.Module):
    def __init__(self, c: Tuple[int, ...]):
        super().__init__()
        self.module_dict = nn.ModuleDict()
        self.module_dict["first_conv"] = nn.Conv3d(1, c[0], kernel_size=3, padding=1)
        for n in range(N_LEVELS):
            self.module_dict[f"conv_stack_{n}"] = _ConvBlock(c[n], c[n], 3)
            self.module_dict[f"stride_conv_{n}"] = _ConvBlock(c[n], c[n + 1], 1, kernel_size=2, stride=2, padding=0)
        self.module_dict["bottleneck"] = _ConvBlock(c[N_LEVELS], c[N_LEVELS], 2)

    def forward(self, x: torch.Tensor):
        skips = []
        for name, op in self.module_dict.items():
            x = op(x)
            if name.startswith("conv_stack"):
                skips.append(x)
        return x, skips


class _Decoder(nn.Module):
    def __init__(self, c: Tuple[int, ...]):
        super().__init__()
        self.module_dict = nn.ModuleDict()
        for n in reversed(range(N_LEVELS)):
            self.module_dict[f"deconv_{n}"] = nn.ConvTranspose3d(c[n + 1], c[n], kernel_size=2, stride=2)
            self.module_dict[f"activation_{n}"] = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
            self.module_dict[f"conv_stack_{n}"] = _ConvBlock(2 * c[n], c[n], 3)

    def forward(self, x: torch.Tensor, skips: List[torch.Tensor]) -> torch.Tensor:
        for n in reversed(range(N_LEVELS)):
            x = self.module_dict[f"activation_{n}"](self.module_dict[f"deconv_{n}"](x))
            x = self.module_dict[f"conv_stack_{n}"](torch.cat([skips[n], x], dim=1))
        return x


class BNUNet3D(nn.Module):
    """Residual 3D U-Net with batch normalisation, ``(b, 1, z, y, x) -> (b, 1, z, y, x)``."""

    def __init__(self, channels: Tuple[int, ...]):
        super().__init__()
        self.channels = check_channels(channels)
        self.encoder = _Encoder(self.channels)
        self.decoder = _Decoder(self.channels)
        self.final = nn.Conv3d(self.channels[0], 1, kernel_size=3, padding=1)

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
        h, skips = self.encoder(x)
        return x + self.final(self.decoder(h, skips))


def fold_inverted_contrast(state: dict) -> dict:
    """The weights of a :class:`BNUNet3D` trained on inverted (protein-bright) maps, changed so that
    the network takes and returns our protein-dark contrast: ``f'(x) = -f(-x)``.

    With ``f(x) = x + final(D(E(x)))``: negating the first convolution's weight gives
    ``E'(x) = E(-x)`` (its bias and everything after it unchanged), and negating the final
    convolution's weight and bias gives ``final' = -final``, so
    ``f'(x) = x - final(D(E(-x))) = -f(-x)``, exactly (IEEE negation is exact).

    Parameters
    ----------
    state : dict
        A state dict of this network (not modified).

    Returns
    -------
    dict
        A new state dict.

    Raises
    ------
    KeyError
        Naming the layer when ``state`` is not this network's.
    """
    out = dict(state)
    for key in (FIRST_CONV_WEIGHT, FINAL_WEIGHT, FINAL_BIAS):
        if key not in out:
            raise KeyError(f"{key} (not the weights of a batch-normalised U-Net)")
        out[key] = -out[key]
    return out


FIRST_CONV_WEIGHT = "encoder.module_dict.first_conv.weight"
FINAL_WEIGHT, FINAL_BIAS = "final.weight", "final.bias"
