"""``isonet2 deconv STAR``: CTF deconvolution (IsoNet1/Warp Wiener-like filter) per tomogram.

Reads each selected tomogram (``--input_column``; the IsoNet2 default ``rlnTomoName`` means
the tomogram itself: ``rlnTomoReconstructedTomogram``, else the mean of the even/odd halves),
deconvolves it with the STAR's microscope parameters (pixel size, defocus, voltage, Cs,
amplitude contrast), writes ``OUTPUT_DIR/<rlnTomoName>_deconv.mrc`` and records it in
``rlnDeconvTomoName`` with the settings used in ``rlnSnrFalloff`` / ``rlnDeconvStrength`` (the
STAR is rewritten atomically after every tomogram). Every input is checked before any work
starts.
"""
from __future__ import annotations

import argparse

from isonet2core.cli import common
from isonet2core.config import DeconvConfig
from isonet2core.io import star


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options (IsoNet2 spellings, :mod:`isonet2core.cli.common`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    """
    common.add_map_step_arguments(
        parser, DeconvConfig, input_column=star.TOMO_NAME,
        input_help="STAR column of the maps to deconvolve; rlnTomoName means the tomogram "
                   "(rlnTomoReconstructedTomogram, else the mean of the even/odd halves)",
        output_dir="deconv", output_help="folder for the deconvolved tomograms (<rlnTomoName>_deconv.mrc)")


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
    cfg = DeconvConfig(**common.config_values(DeconvConfig, args)).validate()
    from isonet2core.steps.deconv import deconvolve_star  # torch: only once the options are known good
    for name, target in deconvolve_star(common.star_path(args), cfg, args.output_dir,
                                        input_column=args.input_column, tomo_idx=args.tomo_idx):
        print(f"deconv: {name} -> {target}")
    return 0
