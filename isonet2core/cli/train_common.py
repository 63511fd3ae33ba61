"""Options and steps shared by ``refine`` and ``denoise``: the training options (generated
from :class:`~isonet2core.config.TrainConfig`), the run settings (output folder, devices,
resume), and ``--with_predict``."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from isonet2core import filenames, predict
from isonet2core.cli import common
from isonet2core.config import DEFAULT_LOSS_FUNC, REFINE_ONLY, PredictConfig, TrainConfig
from isonet2core.device import select_devices
from isonet2core.training.plan import plan_training
from isonet2core.training.trainer import RunSettings, TrainResult, train

log = logging.getLogger(__name__)


def _bool_or_path(text: str):
    """``--resume``: True/False, or the path of a checkpoint."""
    value = str(text).strip()
    if value.lower() in ("true", "1", "yes", "y", "on"):
        return True
    if value.lower() in ("false", "0", "no", "n", "off", "none", ""):
        return False
    return value


def add_training_arguments(parser: argparse.ArgumentParser, *, output_dir: str, method: str) -> None:
    """The options shared by ``refine`` and ``denoise`` (IsoNet2 spellings).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    output_dir : str
        Default output folder.
    method : str
        The command's default method (chooses the default loss).
    """
    common.add_star_argument(parser)
    common.add_option(parser, "output_dir", default=output_dir,
                      help="folder for model files, loss history and plots")
    common.add_config_options(parser, TrainConfig, exclude=() if method != "n2n" else REFINE_ONLY,
                              defaults={"loss_func": DEFAULT_LOSS_FUNC[method]})
    common.add_option(parser, "pretrained_model", type=common.none_or(str), default=None,
                      help="start from the weights of this model file (fine-tuning; same arch and cube_size)")
    common.add_option(parser, "resume", type=_bool_or_path, default=False,
                      help="continue an interrupted run: True (the _full.pt in output_dir) or a checkpoint path")
    common.add_option(parser, "tomo_idx", type=common.index_selection, default=None,
                      help="rlnIndex values of the tomograms to train on, e.g. 1,3,5-7 (default: all)")
    common.add_device_options(parser)


def train_settings(args: argparse.Namespace, method: str) -> dict:
    """The TrainConfig fields of the command's options (refine's own options only for refine).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.
    method : str
        The command's method.

    Returns
    -------
    dict
        Field name -> value.
    """
    return common.config_values(TrainConfig, args, exclude=REFINE_ONLY if method == "n2n" else ())


def run_training(args: argparse.Namespace, method: str) -> int:
    """``refine`` / ``denoise``: plan (every input checked), train, and ``--with_predict``.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.
    method : str
        ``auto`` (refine) or ``n2n`` (denoise).

    Returns
    -------
    int
        The exit code (0).
    """
    star_file = common.star_path(args)
    plan = plan_training(star_file, method, train_settings(args, method), tomo_idx=args.tomo_idx,
                         input_column=getattr(args, "input_column", "auto"))
    result = train(plan.cfg, plan.tomograms, run_settings(args, plan.cfg))
    log.info("model: %s", result.model_path)
    if args.with_predict:
        finish_with_predict(star_file, result, args, plan.cfg)
    return 0


def run_settings(args: argparse.Namespace, cfg: TrainConfig) -> RunSettings:
    """Output folder, devices and the resume / pretrained checkpoint, checked.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.
    cfg : TrainConfig
        The training settings.

    Returns
    -------
    RunSettings
        How to run.
    """
    if args.ncpus < 1:
        raise common.CLIError(f"ncpus must be at least 1, got {args.ncpus}")
    select_devices(args.device, args.gpuID)  # ValueError now, not after loading the data
    out = Path(args.output_dir)
    resume = None
    if args.resume is True:
        resume = filenames.model_path(out, cfg.method, cfg.arch, cfg.cube_size)
        if not resume.is_file():
            raise FileNotFoundError(f"--resume True: no {resume.name} in {out} to continue from")
    elif args.resume:
        resume = Path(args.resume)
    pretrained = Path(args.pretrained_model) if args.pretrained_model else None
    return RunSettings(output_dir=out, device=args.device, gpu_ids=args.gpuID, ncpus=args.ncpus,
                       resume=resume, pretrained_model=pretrained, command_line=tuple(sys.argv))


def finish_with_predict(star_file: str, result: TrainResult, args: argparse.Namespace,
                        cfg: TrainConfig) -> None:
    """Predict the trained tomograms with the final model (``--with_predict``).

    Parameters
    ----------
    star_file : str
        The tomograms STAR (updated with the predicted maps).
    result : TrainResult
        The training's model files.
    args : argparse.Namespace
        Parsed arguments (predict options).
    cfg : TrainConfig
        The training settings.
    """
    out = Path(args.output_dir) / ("denoised" if cfg.method == "n2n" else "corrected")
    device = select_devices(args.device, args.gpuID)[0]
    predict.predict_tomograms(star_file, result.model_path, None, out,
                              PredictConfig(is_ctf_flipped=cfg.is_ctf_flipped,
                                            mixed_precision=cfg.mixed_precision,
                                            amp_dtype=cfg.amp_dtype, compile_model=cfg.compile_model,
                                            apply_mw_x1=getattr(args, "apply_mw_x1", True)),
                              tomo_idx=args.tomo_idx, device=device,
                              input_column=getattr(args, "input_column", "auto"))
