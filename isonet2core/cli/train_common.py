"""Options and steps shared by ``refine`` and ``denoise``: the training options (generated
from :class:`~isonet2core.config.TrainConfig`), the run settings (output folder, devices,
resume), and ``--with_predict``."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from isonet2core.cli import common
from isonet2core.config import DEFAULT_LOSS_FUNC, DENOISE_METHOD, REFINE_ONLY, PredictConfig, TrainConfig, method_traits
from isonet2core.device import select_devices
from isonet2core.io import locks, output_guard, output_names
from isonet2core.steps import predict
from isonet2core.training.plan import TrainingPlan, plan_training
from isonet2core.training.spec import RunSettings
from isonet2core.training.trainer import TrainResult, check_run_outputs, train

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
    common.add_config_options(parser, TrainConfig, exclude=REFINE_ONLY if method == DENOISE_METHOD else (),
                              defaults={"loss_func": DEFAULT_LOSS_FUNC[method]})
    common.add_option(parser, "pretrained_model", type=common.none_or(str), default=None,
                      help="start from the weights of this model file (fine-tuning; same arch and cube_size)")
    common.add_option(parser, "resume", type=_bool_or_path, default=False,
                      help="continue an interrupted run: True (the _full.pt in output_dir) or a checkpoint path")
    common.add_option(parser, "overwrite", type=common.parse_bool, default=False,
                      help="replace the run already in output_dir (its model files, loss history, config "
                           "and previews are removed first); without it such a folder is refused "
                           "unless --resume continues the run")
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
        The command's method: ``auto`` or one of refine's (refine), or ``DENOISE_METHOD``.

    Returns
    -------
    dict
        Field name -> value.
    """
    return common.config_values(TrainConfig, args, exclude=REFINE_ONLY if method == DENOISE_METHOD else ())


def run_training(args: argparse.Namespace, method: str) -> int:
    """``refine`` / ``denoise``: plan (every input checked), train, and ``--with_predict``.

    The output folder is locked for the run (:func:`isonet2core.io.locks.run_lock`: a second run
    into it is refused, naming this one); a folder holding an earlier run is refused unless
    ``--resume`` continues it or ``--overwrite`` replaces it (its files removed first).

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
    out = Path(args.output_dir)
    fresh = not args.resume
    if fresh and not args.overwrite:
        refuse_previous_run(out)               # before reading any data
    plan = plan_training(star_file, method, train_settings(args, method), tomo_idx=args.tomo_idx,
                         input_column=args.input_column)
    settings = dataclasses.replace(run_settings(args, plan.cfg), protect=plan.inputs)
    check_outputs_first(star_file, plan, settings, args)
    with locks.run_lock(out):                  # the folder is this run's until it ends
        if fresh and not args.overwrite:
            refuse_previous_run(out)           # one that ended while this one was planned
        elif fresh:
            remove_previous_run(out, keep=[settings.pretrained_model])
        result = train(plan.cfg, plan.tomograms, settings)
        log.info("model: %s", result.model_path)
        if args.with_predict:
            finish_with_predict(star_file, result, args, plan.cfg)
    return 0


def previous_run_files(output_dir: Path) -> List[Path]:
    """The files a training run leaves in its folder: model files (any method, architecture and
    cube size), ``loss_history.json``, ``loss.png``, ``config.json`` and previews.

    Parameters
    ----------
    output_dir : Path
        The folder.

    Returns
    -------
    list of Path
        Those present, sorted.
    """
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_file() and
             (output_names.MODEL_NAME.match(p.name) or
              p.name in (output_names.HISTORY_FILE, output_names.LOSS_PNG, output_names.CONFIG_FILE))]
    preview = output_dir / output_names.PREVIEW_DIR
    if preview.is_dir():
        found += [p for p in preview.iterdir() if p.is_file() and output_names.PREVIEW_NAME.match(p.name)]
    return sorted(found)


def refuse_previous_run(output_dir: Path) -> None:
    """Refuse a new run into a folder that holds another run's files.

    Parameters
    ----------
    output_dir : Path
        The folder.

    Raises
    ------
    CLIError
        Naming the folder, a file and the options that continue or replace the run.
    """
    found = previous_run_files(output_dir)
    models = [p for p in found if output_names.MODEL_NAME.match(p.name)] or found
    if models:
        raise common.CLIError(f"output folder {output_dir} already holds a run ({models[0].name}"
                              f"{f' and {len(found) - 1} more files' if len(found) > 1 else ''}): "
                              "--resume True continues it, --overwrite True replaces it, or choose "
                              "another --output_dir")


def remove_previous_run(output_dir: Path, keep: Sequence[Optional[Path]] = ()) -> List[Path]:
    """``--overwrite``: remove the files of the run in the folder, so that none is left mixed
    with the new run's.

    Parameters
    ----------
    output_dir : Path
        The folder.
    keep : sequence of Path
        Inputs of the new run (``--pretrained_model``): refused when one of them would go.

    Returns
    -------
    list of Path
        The removed files.

    Raises
    ------
    CLIError
        When an input of the new run is one of the files.
    """
    found = previous_run_files(output_dir)
    inputs = {p.resolve() for p in keep if p is not None}
    clash = [p for p in found if p.resolve() in inputs]
    if clash:
        raise common.CLIError(f"--overwrite would remove {clash[0]}, an input of this run; copy it "
                              "out of the output folder first")
    for p in found:
        p.unlink()
    if found:
        log.info("--overwrite: removed %d file(s) of the previous run in %s", len(found), output_dir)
    return found


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
        resume = output_names.model_path(out, cfg.method, cfg.arch, cfg.cube_size)
        if not resume.is_file():
            raise FileNotFoundError(f"--resume True: no {resume.name} in {out} to continue from")
    elif args.resume:
        resume = Path(args.resume)
    pretrained = Path(args.pretrained_model) if args.pretrained_model else None
    return RunSettings(output_dir=out, device=args.device, gpu_ids=args.gpuID, ncpus=args.ncpus,
                       resume=resume, pretrained_model=pretrained, command_line=tuple(sys.argv))


def check_outputs_first(star_file: str, plan: TrainingPlan, settings: RunSettings,
                        args: argparse.Namespace) -> None:
    """Before any training (:mod:`isonet2core.io.output_guard`): the run's files are no input of the
    STAR (any row, any column), no map, mask or model it reads, and its folder accepts files
    (:func:`~isonet2core.training.trainer.check_run_outputs`); with ``--with_predict`` the STAR
    can be updated and the prediction folder accepts files.

    Parameters
    ----------
    star_file : str
        The tomograms STAR.
    plan : TrainingPlan
        From :func:`~isonet2core.training.plan.plan_training`.
    settings : RunSettings
        Output folder, pretrained model, ``protect``.
    args : argparse.Namespace
        Parsed arguments (``with_predict``).

    Raises
    ------
    ValueError, PermissionError, FileExistsError
        Naming the file or folder.
    """
    check_run_outputs(plan.cfg, plan.tomograms, settings)
    if args.with_predict:
        output_guard.check_replaceable(star_file)
        output_guard.check_folder_writable(Path(args.output_dir) / method_traits(plan.cfg.method).output)


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
    out = Path(args.output_dir) / method_traits(cfg.method).output
    device = select_devices(args.device, args.gpuID)[0]
    predict.predict_tomograms(star_file, result.model_path, None, out,
                              PredictConfig(is_ctf_flipped=cfg.is_ctf_flipped,
                                            mixed_precision=cfg.mixed_precision,
                                            amp_dtype=cfg.amp_dtype, compile_model=cfg.compile_model,
                                            apply_mw_x1=args.apply_mw_x1),
                              tomo_idx=args.tomo_idx, device=device,
                              input_column=args.input_column)
