"""``isonet2 prepare-star`` (also ``prepare_star``): list tomograms in a tomograms.star.

IsoNet2 spellings: ``--full DIR`` or ``--even DIR --odd DIR``, ``--star_name``,
``--pixel_size auto|X``, ``--defocus X`` or ``a,b,...`` (one per tomogram), ``--cs``,
``--voltage``, ``--ac``, ``--tilt_min``, ``--tilt_max``, ``--create_average True|False``,
``--number_subtomos auto|N``, ``--mask_folder``, ``--coordinate_folder``.
"""
from __future__ import annotations

import argparse

from isonet2core.cli import common
from isonet2core.config import PrepareStarConfig
from isonet2core.steps import prepare


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options (IsoNet2 spellings, :mod:`isonet2core.cli.common`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    """
    common.add_config_options(parser, PrepareStarConfig)


def config_from_args(args: argparse.Namespace) -> PrepareStarConfig:
    """The validated configuration of the command's options.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.

    Returns
    -------
    object
        The command's config dataclass.

    Raises
    ------
    ValueError
        Naming an unusable value.
    """
    return PrepareStarConfig(**common.config_values(PrepareStarConfig, args)).validate()


def run(args: argparse.Namespace) -> int:
    """Run the command on parsed arguments (one call into the core).

    Parameters
    ----------
    args : argparse.Namespace
        From the parser :func:`add_arguments` filled.

    Returns
    -------
    int
        The exit code (0).
    """
    cfg = config_from_args(args)
    table = prepare.prepare_star(cfg)
    print(f"wrote {table.source}: {len(table)} tomograms")
    return 0
