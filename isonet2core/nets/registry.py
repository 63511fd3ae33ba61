"""The networks by name: the families, their channel ladders and the one builder.

Importing this module does not import torch (the configuration and the Scipion forms take
their architecture choices from here); :func:`build` imports the family's module.

A name is ``{family}-{size}``: family ``unet`` (batch-normalised, the IsoNet2 program's layout,
:mod:`isonet2core.nets.bn_unet`, the default) or ``plain-unet`` (no normalisation,
:mod:`isonet2core.nets.unet`); size ``small``, ``medium`` or ``large``, whose channel ladder
(levels 0..3, then the bottom) both families share.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Dict, Tuple

if TYPE_CHECKING:
    from torch import nn

LADDERS: Dict[str, Tuple[int, int, int, int, int]] = {
    "small": (16, 32, 64, 128, 256),
    "medium": (32, 64, 128, 256, 320),
    "large": (64, 128, 256, 320, 320),
}
"""Feature channels at levels 0..3 and at the bottom, by size (the official 16/32/64-filter
bases; channels double at each down-sampling, capped at 320)."""

FAMILIES: Dict[str, Tuple[str, str]] = {
    "unet": ("isonet2core.nets.bn_unet", "BNUNet3D"),
    "plain-unet": ("isonet2core.nets.unet", "UNet3D"),
}
"""Family -> (module, class); the class takes a channel ladder."""

ARCHITECTURES: Tuple[str, ...] = tuple(f"{family}-{size}" for family in FAMILIES for size in LADDERS)
"""Every network name, the default family first."""


def arch_name(size: str, family: str = "unet") -> str:
    """The network name of a size and family (``arch_name("small")`` is ``unet-small``).

    Parameters
    ----------
    size : str
        A key of :data:`LADDERS`.
    family : str
        A key of :data:`FAMILIES` (the default family).

    Returns
    -------
    str
        One of :data:`ARCHITECTURES`.

    Raises
    ------
    ValueError
        An unknown size or family.
    """
    name = f"{family}-{size}"
    _split(name)
    return name


def _split(arch: str) -> Tuple[str, str]:
    family, _, size = str(arch).rpartition("-")
    if family not in FAMILIES or size not in LADDERS:
        raise ValueError(f"unknown network architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    return family, size


DEFAULT_ARCH = arch_name("medium")
"""The default network (the official IsoNet2 default)."""


def channels_of(arch: str) -> Tuple[int, ...]:
    """The channel ladder of a network name.

    Parameters
    ----------
    arch : str
        One of :data:`ARCHITECTURES`.

    Returns
    -------
    tuple of int
        Channels at levels 0..3 and at the bottom.

    Raises
    ------
    ValueError
        An unknown name.
    """
    return LADDERS[_split(arch)[1]]


def is_program_layout(arch: str) -> bool:
    """Whether a network has the IsoNet2 program's layout (its model files load into it).

    Parameters
    ----------
    arch : str
        One of :data:`ARCHITECTURES`.

    Returns
    -------
    bool
        True for the ``unet`` family.

    Raises
    ------
    ValueError
        An unknown name.
    """
    return _split(arch)[0] == "unet"


def build(arch: str) -> nn.Module:
    """A fresh network of a named architecture.

    Parameters
    ----------
    arch : str
        One of :data:`ARCHITECTURES`.

    Returns
    -------
    nn.Module
        Initialised weights (from torch's random state).

    Raises
    ------
    ValueError
        An unknown name.
    """
    family, size = _split(arch)
    module, cls = FAMILIES[family]
    return getattr(importlib.import_module(module), cls)(LADDERS[size])
