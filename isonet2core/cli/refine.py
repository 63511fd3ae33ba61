"""``isonet2 refine STAR``: train the IsoNet2 network (missing wedge, denoising, CTF).

Example (IsoNet2 spelling)::

    isonet2 refine tomograms.star --CTF_mode network --mw_weight 200 --with_preview False --gpuID 0,1

``--method auto`` trains ``isonet2-n2n`` when every selected tomogram has even and odd halves,
else ``isonet2`` on one map per tomogram (``--input_column``). Everything is checked before
training starts: the STAR file, every MRC header and its data (NaN, constant maps), halves of
the same grid, masks, tomograms at least one cube large, the settings, and the resume /
pretrained checkpoint. Model files, ``loss_history.json``, ``loss.png`` and ``config.json``
go to ``--output_dir``; ``--with_predict True`` then predicts the tomograms into
``OUTPUT_DIR/corrected`` and adds their column to the STAR file.

The shared training options are in :mod:`.train_common`, the plan (STAR -> tomograms, every
file checked) in :mod:`isonet2core.training.plan`.
"""
from __future__ import annotations

import argparse
import logging

from isonet2core.cli import common, train_common
from isonet2core.config import (
    REFINE_METHODS,
    PredictConfig,
    options_of,
    refine_method,
)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options (IsoNet2 spellings, :mod:`isonet2core.cli.common`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    """
    train_common.add_training_arguments(parser, output_dir="isonet_maps", method=refine_method(halves=True))
    common.add_option(parser, "method", default="auto", choices=("auto", *REFINE_METHODS),
                      help=f"{refine_method(halves=True)} (even/odd halves), {refine_method(halves=False)} "
                           f"(one map per tomogram), or auto: {refine_method(halves=True)} when the STAR "
                           "lists halves")
    common.add_option(parser, "input_column", default="auto",
                      help="single-map refine: STAR column of the maps; auto: rlnDeconvTomoName when "
                           "filled, else rlnTomoReconstructedTomogram")
    common.add_config_options(parser, PredictConfig,
                              exclude=[o.name for o in options_of(PredictConfig) if o.name != "apply_mw_x1"])
    common.add_option(parser, "with_predict", type=common.parse_bool, default=False,
                      help="predict the tomograms with the final model after training")


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
    return train_common.run_training(args, args.method)
