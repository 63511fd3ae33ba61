"""``isonet2 predict STAR MODEL``: apply a trained network to the tomograms of a STAR file.

Example (IsoNet2 spelling): ``isonet2 predict tomograms.star network.pt --output_dir out``.
Writes ``OUTPUT_DIR/<rlnTomoName>_corrected.mrc`` (denoise models: ``_denoised.mrc``; N2N
models also ``_half1``/``_half2``) and adds their columns to the STAR file.
"""
from __future__ import annotations

import argparse
import logging

import torch

from isonet2core.cli import common
from isonet2core.config import PredictConfig
from isonet2core.device import cpu_threads, describe, select_devices
from isonet2core.steps import predict

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options (IsoNet2 spellings, :mod:`isonet2core.cli.common`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    """
    common.add_star_argument(parser)
    parser.add_argument("model_pos", nargs="?", metavar="model", default=None,
                        help="the model file (.pt) written by `isonet2 refine` or `isonet2 denoise`")
    common.add_option(parser, "model", default=None,
                      help="the model file (same as the positional argument)")
    common.add_option(parser, "model2", type=common.none_or(str), default=None,
                      help="second network of split-halves training: the first predicts the even "
                           "half, this one the odd half (a model file holding both needs no --model2)")
    common.add_option(parser, "output_dir", default="corrected_tomos",
                      help="folder for the predicted tomograms")
    common.add_option(parser, "input_column", default="auto",
                      help="STAR column of the maps to predict; auto: even/odd halves for N2N models, "
                           "else rlnDeconvTomoName when filled, else rlnTomoReconstructedTomogram")
    common.add_config_options(parser, PredictConfig)
    common.add_option(parser, "tomo_idx", type=common.index_selection, default=None,
                      help="rlnIndex values of the tomograms to predict, e.g. 1,3,5-7 (default: all)")
    common.add_device_options(parser)


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
    star_file = common.star_path(args)
    if args.model and args.model_pos and args.model != args.model_pos:
        raise common.CLIError(f"two model files given: {args.model_pos} and --model {args.model}")
    model = args.model or args.model_pos
    if not model:
        raise common.CLIError("a model file is required (positional model or --model)")
    cfg = PredictConfig(**common.config_values(PredictConfig, args)).validate()
    if args.ncpus < 1:
        raise common.CLIError(f"ncpus must be at least 1, got {args.ncpus}")
    devices = select_devices(args.device, args.gpuID)
    if len(devices) > 1:
        log.info("predict runs on one device; using %s of %s", devices[0], [str(d) for d in devices])
    log.info("devices: %s", describe(devices[:1]))
    if devices[0].type == "cpu":
        torch.set_num_threads(cpu_threads(args.ncpus))
    predict.predict_tomograms(star_file, model, args.model2, args.output_dir, cfg,
                              tomo_idx=args.tomo_idx, device=devices[0], input_column=args.input_column)
    return 0
