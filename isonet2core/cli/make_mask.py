"""``isonet2 make-mask STAR``: sampling masks from local density and local standard deviation.

For each selected tomogram, reads ``--input_column`` (default ``rlnDeconvTomoName``; an empty
cell falls back to ``rlnTomoReconstructedTomogram``, then to the mean of the even/odd halves),
computes :func:`isonet2core.steps.masking.make_mask`, writes ``OUTPUT_DIR/<rlnTomoName>_mask.mrc``
(float32 0/1) and records it in ``rlnMaskName`` (the STAR is rewritten atomically after every
tomogram). A row naming an IMOD model (``.mod``) in ``rlnMaskBoundary`` keeps only the region
it outlines (the official IsoNet2's rule, :mod:`isonet2core.io.boundary`). Every input is checked
before any work starts.
"""
from __future__ import annotations

import argparse

from isonet2core.cli import common
from isonet2core.config import MaskConfig
from isonet2core.io import star
from isonet2core.steps.masking import mask_star


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options (IsoNet2 spellings, :mod:`isonet2core.cli.common`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    """
    common.add_map_step_arguments(
        parser, MaskConfig, input_column=star.DECONV,
        input_help="STAR column of the maps to mask (empty cells fall back to "
                   "rlnTomoReconstructedTomogram, then to the mean of the even/odd halves)",
        output_dir="mask", output_help="folder for the masks (<rlnTomoName>_mask.mrc)")


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
    cfg = MaskConfig(**common.config_values(MaskConfig, args)).validate()
    for name, target, kept in mask_star(common.star_path(args), cfg, args.output_dir,
                                        input_column=args.input_column, tomo_idx=args.tomo_idx):
        print(f"make-mask: {name} -> {target} ({100.0 * kept:.1f}% kept)")
    return 0
