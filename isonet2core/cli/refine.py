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

The shared training options and the STAR -> training plan logic also serve ``denoise``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Tuple, cast

from isonet2core import filenames, maps, mrcio, planning, predict, star
from isonet2core.cli import common
from isonet2core.config import (
    DEFAULT_LOSS_FUNC,
    REFINE_ONLY,
    Method,
    PredictConfig,
    TrainConfig,
    options_of,
)
from isonet2core.device import select_devices
from isonet2core.training.sampler import read_box_file
from isonet2core.training.trainer import RunSettings, TomogramSpec, TrainResult, train

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
    """The options shared by ``refine`` and ``denoise`` (IsoNet2 spellings); ``method`` (the
    command's default method) chooses the default loss."""
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, output_dir="isonet_maps", method="isonet2-n2n")
    common.add_option(parser, "method", default="auto", choices=("auto", "isonet2-n2n", "isonet2"),
                      help="isonet2-n2n (even/odd halves), isonet2 (one map per tomogram), or auto: "
                           "isonet2-n2n when the STAR lists halves")
    common.add_option(parser, "input_column", default="auto",
                      help="single-map refine: STAR column of the maps; auto: rlnDeconvTomoName when "
                           "filled, else rlnTomoReconstructedTomogram")
    common.add_config_options(parser, PredictConfig,
                              exclude=[o.name for o in options_of(PredictConfig) if o.name != "apply_mw_x1"])
    common.add_option(parser, "with_predict", type=common.parse_bool, default=False,
                      help="predict the tomograms with the final model after training")


# ---------------------------------------------------------------------------------------------
# shared by refine and denoise
# ---------------------------------------------------------------------------------------------
def train_config(args: argparse.Namespace, method: Method) -> TrainConfig:
    """The validated TrainConfig from the command's options (``method`` resolved)."""
    exclude = REFINE_ONLY if method == "n2n" else ()
    return TrainConfig(method=method, **common.config_values(TrainConfig, args, exclude=exclude)).validate()


def _halves_of(table: star.TomogramsTable, row: int, method: str) -> Tuple[Path, Path]:
    missing = [c for c in (star.TOMO_HALF1, star.TOMO_HALF2) if table.value(row, c) is None]
    if missing:
        raise ValueError(f"method {method} needs even/odd halves, but tomogram {table.tomo_name(row)} "
                         f"of {table.source} has no {' / '.join(missing)}")
    return table.required_path(row, star.TOMO_HALF1), table.required_path(row, star.TOMO_HALF2)


def plan_tomograms(table: star.TomogramsTable, rows: List[int], cfg: TrainConfig,
                   input_column: str = "auto") -> List[TomogramSpec]:
    """One TomogramSpec per selected row, every file checked (headers and data) before training:
    ``ValueError``/``FileNotFoundError`` naming the tomogram or file."""
    if not rows:
        raise ValueError(f"{table.source}: no tomograms selected")
    specs = []
    for row in rows:
        name = table.tomo_name(row)
        if cfg.method == "isonet2":
            map_paths: Tuple[Path, ...] = (table.required_path(row, maps.single_map_column(table, row, input_column)),)
        else:
            map_paths = _halves_of(table, row, cfg.method)
        infos = maps.check_maps(map_paths)
        planning.check_fits(infos[0].shape, cfg.cube_size, f"{name} ({map_paths[0]})")
        mask = table.path(row, star.MASK) if table.value(row, star.MASK) is not None else None
        if mask is not None:
            info = mrcio.read_header(mask)
            if info.shape != infos[0].shape:
                raise ValueError(f"mask {mask} of tomogram {name} has shape {info.shape}, the tomogram "
                                 f"{infos[0].shape}")
        box = table.path(row, star.BOX_FILE) if table.value(row, star.BOX_FILE) is not None else None
        if box is not None:
            if not box.is_file():
                raise FileNotFoundError(f"box file {box} of tomogram {name} (rlnBoxFile) not found")
            n = len(read_box_file(box, infos[0].shape, cfg.cube_size, name))
        else:
            n = (cfg.number_subtomos or table.value(row, star.N_SUBTOMO)
                 or planning.default_subtomos_per_tomogram(len(rows)))
        specs.append(TomogramSpec(name, map_paths, table.microscope(row), int(n), mask,
                                  index=table.index(row), box_file=box))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"{table.source}: tomogram names (rlnTomoName) must be distinct, got {names}")
    return specs


def run_settings(args: argparse.Namespace, cfg: TrainConfig) -> RunSettings:
    """Output folder, devices and the resume / pretrained checkpoint, checked."""
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


def resolve_method(requested: str, table: star.TomogramsTable, rows: List[int]) -> Method:
    """``auto`` -> isonet2-n2n when every selected tomogram has both halves, else isonet2."""
    if requested != "auto":
        return cast(Method, requested)       # one of the parser's choices
    halves = all(table.value(r, star.TOMO_HALF1) is not None and table.value(r, star.TOMO_HALF2) is not None
                 for r in rows)
    method: Method = "isonet2-n2n" if halves else "isonet2"
    log.info("method auto: %s (%s)", method, "even/odd halves listed" if halves else "no halves in the STAR")
    return method


def run(args: argparse.Namespace) -> int:
    star_file = common.star_path(args)
    table = star.TomogramsTable.read(star_file)
    rows = table.rows_for(args.tomo_idx)
    method = resolve_method(args.method, table, rows)
    cfg = train_config(args, method)
    if cfg.split_halves and method != "isonet2-n2n":
        raise ValueError("split_halves needs even/odd halves (method isonet2-n2n)")
    settings = run_settings(args, cfg)
    specs = plan_tomograms(table, rows, cfg, args.input_column)
    result = train(cfg, specs, settings)
    log.info("model: %s", result.model_path)
    if args.with_predict:
        finish_with_predict(star_file, result, args, cfg)
    return 0


def finish_with_predict(star_file: str, result: TrainResult, args: argparse.Namespace,
                        cfg: TrainConfig) -> None:
    """Predict the trained tomograms with the final model (``--with_predict``)."""
    out = Path(args.output_dir) / ("denoised" if cfg.method == "n2n" else "corrected")
    device = select_devices(args.device, args.gpuID)[0]
    predict.predict_tomograms(star_file, result.model_path, None, out,
                              PredictConfig(is_ctf_flipped=cfg.is_ctf_flipped,
                                            mixed_precision=cfg.mixed_precision,
                                            amp_dtype=cfg.amp_dtype, compile_model=cfg.compile_model,
                                            apply_mw_x1=getattr(args, "apply_mw_x1", True)),
                              tomo_idx=args.tomo_idx, device=device,
                              input_column=getattr(args, "input_column", "auto"))
