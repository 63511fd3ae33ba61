"""``isonet2 predict STAR MODEL``: apply a trained network to the tomograms of a STAR file.

Example (IsoNet2 spelling): ``isonet2 predict tomograms.star network.pt --output_dir out``.
Writes ``OUTPUT_DIR/<rlnTomoName>_corrected.mrc`` (denoise models: ``_denoised.mrc``; N2N
models also ``_half1``/``_half2``) and adds their columns to the STAR file.
"""
from __future__ import annotations

import argparse
import logging

import torch

from isonet2core import predict
from isonet2core.cli import common
from isonet2core.config import AMP_DTYPES, PredictConfig
from isonet2core.device import cpu_threads, select_devices

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    common.add_option(parser, "apply_mw_x1", type=common.parse_bool, default=True,
                      help="remove the missing-wedge region from each input tile, as the network's "
                           "training inputs were (refine models)")
    common.add_option(parser, "isCTFflipped", type=common.parse_bool, default=False,
                      help="the tomograms are already phase flipped (never flip them again)")
    common.add_option(parser, "padding_factor", type=float, default=1.5,
                      help="tile spacing = cube_size / padding_factor; larger values mean more overlap "
                           "(1 = no overlap, 1.5 = a third of the cube, up to 4)")
    common.add_option(parser, "batch_size", type=int, default=PredictConfig.batch_size,
                      help="tiles per forward pass (lower it if the GPU runs out of memory)")
    common.add_option(parser, "mixed_precision", type=common.parse_bool, default=PredictConfig.mixed_precision,
                      help="autocast the network to 16-bit floats (CUDA; the CPU only with --amp_dtype "
                           "bfloat16)")
    common.add_option(parser, "amp_dtype", default=PredictConfig.amp_dtype, choices=AMP_DTYPES,
                      help="dtype of mixed precision: auto (CUDA float16, CPU float32), bfloat16 (also "
                           "on CPUs with native bfloat16) or float16")
    common.add_option(parser, "compile_model", type=common.parse_bool, default=PredictConfig.compile_model,
                      help="run the network through torch.compile (compiling costs the first tiles)")
    common.add_option(parser, "output_prefix", type=common.none_or(str), default="",
                      help="prefix of the output file names: <prefix>_<rlnTomoName>_corrected.mrc")
    common.add_option(parser, "save_slices", type=common.parse_bool, default=False,
                      help="also write <output>_slices.png (orthoslices) and <output>_spectrum.png "
                           "(Fourier XZ slice) beside each output (the IsoNet2 program does by "
                           "default)")
    common.add_option(parser, "tomo_idx", type=common.index_selection, default=None,
                      help="rlnIndex values of the tomograms to predict, e.g. 1,3,5-7 (default: all)")
    common.add_device_options(parser)


def run(args: argparse.Namespace) -> int:
    star_file = common.star_path(args)
    if args.model and args.model_pos and args.model != args.model_pos:
        raise common.CLIError(f"two model files given: {args.model_pos} and --model {args.model}")
    model = args.model or args.model_pos
    if not model:
        raise common.CLIError("a model file is required (positional model or --model)")
    cfg = PredictConfig(apply_mw_x1=args.apply_mw_x1, is_ctf_flipped=args.isCTFflipped,
                        padding_factor=args.padding_factor, batch_size=args.batch_size,
                        mixed_precision=args.mixed_precision, amp_dtype=args.amp_dtype,
                        compile_model=args.compile_model, output_prefix=args.output_prefix or "",
                        save_slices=args.save_slices).validate()
    if args.ncpus < 1:
        raise common.CLIError(f"ncpus must be at least 1, got {args.ncpus}")
    devices = select_devices(args.device, args.gpuID)
    if len(devices) > 1:
        log.info("predict runs on one device; using %s of %s", devices[0], [str(d) for d in devices])
    if devices[0].type == "cpu":
        torch.set_num_threads(cpu_threads(args.ncpus))
    predict.predict_tomograms(star_file, model, args.model2, args.output_dir, cfg,
                              tomo_idx=args.tomo_idx, device=devices[0], input_column=args.input_column)
    return 0
