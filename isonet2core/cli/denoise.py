"""``isonet2 denoise STAR``: train a Noise2Noise network on the even/odd halves (CryoCARE-like).

Example: ``isonet2 denoise tomograms.star --CTF_mode network --epochs 30``.
Even cubes are mapped onto the odd cubes at the same place and vice versa (method ``n2n``), with
the 90-degree rotations that keep the missing wedge in place as augmentation; no missing-wedge
filling. The CTF modes work as in ``refine``. Every tomogram needs both halves; everything is
checked before training starts. Writes ``network_n2n_{arch}_{cube}_full.pt`` (+ epoch copies,
``loss_history.json``, ``loss.png``, ``config.json``) into ``--output_dir``; ``--with_predict
True`` then writes the denoised tomograms into ``OUTPUT_DIR/denoised`` and the STAR column
rlnDenoisedTomoName.
"""
from __future__ import annotations

import argparse
import logging

from isonet2core.cli import common, train_common
from isonet2core.config import DENOISE_METHOD

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options (IsoNet2 spellings, :mod:`isonet2core.cli.common`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    """
    train_common.add_training_arguments(parser, output_dir="denoise", method=DENOISE_METHOD)   # the IsoNet2 program's folder
    common.add_option(parser, "with_predict", type=common.parse_bool, default=False,
                      help="denoise the tomograms with the final model after training")
    # what refine lets users choose is fixed here: the halves, never re-wedged
    parser.set_defaults(input_column="auto", apply_mw_x1=False)


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
    return train_common.run_training(args, DENOISE_METHOD)
