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
from typing import List, Optional, Tuple, cast

from isonet2core import filenames, maps, mrcio, planning, predict, star
from isonet2core.cli import common
from isonet2core.config import (
    AMP_DTYPES,
    ARCHS,
    CTF_MODES,
    DEFAULT_LOSS_FUNC,
    LOSS_FUNCS,
    NOISE_MODES,
    Method,
    PredictConfig,
    TrainConfig,
)
from isonet2core.device import select_devices
from isonet2core.training.sampler import read_box_file
from isonet2core.training.trainer import RunSettings, TomogramSpec, TrainResult, train

log = logging.getLogger(__name__)

_D = TrainConfig()


def _ctf_mode(text: str) -> Optional[str]:
    value = None if str(text).strip().lower() in ("none", "") else str(text).strip()
    if value not in CTF_MODES:
        raise argparse.ArgumentTypeError(f"CTF_mode must be None, phase_only, wiener or network; got {text!r}")
    return value


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
    common.add_option(parser, "arch", default=_D.arch, choices=ARCHS, help="network size")
    common.add_option(parser, "cube_size", type=int, default=_D.cube_size,
                      help="edge of the training cubes in voxels, a multiple of 16")
    common.add_option(parser, "epochs", type=int, default=_D.epochs, help="number of training epochs")
    common.add_option(parser, "batch_size", type=common.none_or(int), default=None,
                      help="cubes per optimisation step over all GPUs; auto: CPU 2-4, CUDA from GPU "
                           "memory (up to 16 per GPU)")
    common.add_option(parser, "acc_batches", type=int, default=_D.acc_batches,
                      help="batches whose gradients are accumulated before each optimiser step")
    common.add_option(parser, "loss_func", default=DEFAULT_LOSS_FUNC[method], choices=LOSS_FUNCS,
                      help="loss: FSC (1 - mean shell Fourier correlation), FSC+L2 (their sum), L2, L1 "
                           "or Huber")
    common.add_option(parser, "learning_rate", type=float, default=_D.learning_rate,
                      help="learning rate of the first epoch (AdamW)")
    common.add_option(parser, "learning_rate_min", type=float, default=_D.learning_rate_min,
                      help="learning rate of the last epoch (cosine schedule in between)")
    common.add_option(parser, "mixed_precision", type=common.parse_bool, default=_D.mixed_precision,
                      help="autocast the network to 16-bit floats (CUDA; the CPU only with --amp_dtype "
                           "bfloat16)")
    common.add_option(parser, "amp_dtype", default=_D.amp_dtype, choices=AMP_DTYPES,
                      help="dtype of mixed precision: auto (CUDA: bfloat16 where supported, else "
                           "float16; CPU: float32), bfloat16 (also on CPUs with native bfloat16) or "
                           "float16")
    common.add_option(parser, "compile_model", type=common.parse_bool, default=_D.compile_model,
                      help="run the network through torch.compile (the first steps compile it)")
    common.add_option(parser, "CTF_mode", type=_ctf_mode, default=None,
                      help="CTF handling: None, phase_only (phase-flipped data), wiener (Wiener-filtered "
                           "targets) or network (the network outputs CTF-corrected density)")
    common.add_option(parser, "isCTFflipped", type=common.parse_bool, default=_D.is_ctf_flipped,
                      help="the tomograms are already phase flipped")
    common.add_option(parser, "do_phaseflip_input", type=common.parse_bool, default=_D.do_phaseflip_input,
                      help="phase flip the training cubes in wiener/network CTF modes (phase_only always does)")
    common.add_option(parser, "bfactor", type=float, default=_D.bfactor,
                      help="B-factor (A^2) of the network-mode CTF: envelope exp(-B f^2 / 4) applied "
                           "before and after first-peak clipping, as the IsoNet2 program does; "
                           "200-300 for isolated particles, 0 or negative for cells")
    common.add_option(parser, "clip_first_peak_mode", type=int, default=_D.clip_first_peak_mode,
                      choices=(0, 1, 2, 3),
                      help="CTF below its first peak: 0 unchanged, 1 constant, 2 negative sine, 3 cosine")
    common.add_option(parser, "snrfalloff", type=float, default=_D.snrfalloff,
                      help="Wiener target (CTF_mode wiener): SNR fall-off with frequency")
    common.add_option(parser, "deconvstrength", type=float, default=_D.deconvstrength,
                      help="Wiener target (CTF_mode wiener): strength, SNR scaled by 10^deconvstrength")
    common.add_option(parser, "highpassnyquist", type=float, default=_D.highpassnyquist,
                      help="Wiener target (CTF_mode wiener): high-pass cut-off as a fraction of Nyquist")
    common.add_option(parser, "split_halves", type=common.parse_bool, default=_D.split_halves,
                      help="train two independent networks, on the even and on the odd half")
    common.add_option(parser, "number_subtomos", type=common.none_or(int), default=None,
                      help="cubes per tomogram per epoch; None: rlnNumberSubtomo of the STAR, else "
                           f"{planning.SUBTOMOS_PER_EPOCH} / number of tomograms")
    common.add_option(parser, "save_interval", type=int, default=_D.save_interval,
                      help="keep a model copy (and a preview) every this many epochs, and after the last")
    common.add_option(parser, "with_preview", type=common.parse_bool, default=_D.with_preview,
                      help="predict the prev_tomo_idx tomograms every save_interval epochs into "
                           "OUTPUT_DIR/preview")
    common.add_option(parser, "prev_tomo_idx", type=common.index_selection, default="1",
                      help="rlnIndex values of the tomograms previewed, e.g. 1,3 or 2-4 (the first "
                           "trained one when none of them is)")
    common.add_option(parser, "pretrained_model", type=common.none_or(str), default=None,
                      help="start from the weights of this model file (fine-tuning; same arch and cube_size)")
    common.add_option(parser, "resume", type=_bool_or_path, default=False,
                      help="continue an interrupted run: True (the _full.pt in output_dir) or a checkpoint path")
    common.add_option(parser, "seed", type=int, default=_D.seed,
                      help="random seed (cube positions, rotations, noise, initial weights)")
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
    common.add_option(parser, "apply_mw_x1", type=common.parse_bool, default=True,
                      help="--with_predict: remove the missing-wedge region from each input tile "
                           "(the training cubes are always re-wedged; the IsoNet2 program records "
                           "this option in training without using it)")
    common.add_option(parser, "mw_weight", type=float, default=_D.mw_weight,
                      help="weight of the missing-wedge term of the masked loss (the paper uses "
                           "20-200); 0 or negative (the IsoNet2 program's -1): a plain loss over "
                           "the whole cube, no masks")
    common.add_option(parser, "noise_level", type=float, default=_D.noise_level,
                      help="synthetic noise added to the single-map inputs, on the IsoNet2 program's "
                           "scale: std = this x each cube's 4-96 percentile range")
    common.add_option(parser, "noise_mode", default=_D.noise_mode, choices=NOISE_MODES,
                      help="spectrum of the synthetic noise: back-projection noise of a tilt series, "
                           "unweighted (nofilter), ramp- or Hamming-weighted, or white")
    common.add_option(parser, "random_rot_weight", type=float, default=_D.random_rot_weight,
                      help="fraction of arbitrary (trilinear) rotations; the rest are the 20 "
                           "90-degree rotations that move the missing wedge")
    common.add_option(parser, "fill_reuse", type=int, default=_D.fill_reuse,
                      help="train each batch of cubes in this many consecutive steps (new rotations and "
                           "fill noise each time) and predict its missing-wedge filling once; 1 predicts "
                           "on every step (slower per step, see the README's Performance section)")
    common.add_option(parser, "with_predict", type=common.parse_bool, default=False,
                      help="predict the tomograms with the final model after training")


# ---------------------------------------------------------------------------------------------
# shared by refine and denoise
# ---------------------------------------------------------------------------------------------
def train_config(args: argparse.Namespace, method: Method, **extra) -> TrainConfig:
    """The validated TrainConfig from the shared options (+ method specific ``extra``)."""
    return TrainConfig(
        method=method, arch=args.arch, cube_size=args.cube_size, epochs=args.epochs,
        batch_size=args.batch_size, acc_batches=args.acc_batches, loss_func=args.loss_func,
        learning_rate=args.learning_rate, learning_rate_min=args.learning_rate_min,
        mixed_precision=args.mixed_precision, amp_dtype=args.amp_dtype, compile_model=args.compile_model,
        ctf_mode=args.CTF_mode, is_ctf_flipped=args.isCTFflipped,
        do_phaseflip_input=args.do_phaseflip_input, bfactor=args.bfactor,
        clip_first_peak_mode=args.clip_first_peak_mode, snrfalloff=args.snrfalloff,
        deconvstrength=args.deconvstrength, highpassnyquist=args.highpassnyquist,
        split_halves=args.split_halves, number_subtomos=args.number_subtomos,
        save_interval=args.save_interval, with_preview=args.with_preview,
        prev_tomo_idx=None if args.prev_tomo_idx is None else tuple(args.prev_tomo_idx),
        seed=args.seed, **extra,
    ).validate()


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
    cfg = train_config(args, method, mw_weight=args.mw_weight, noise_level=args.noise_level,
                       noise_mode=args.noise_mode, random_rot_weight=args.random_rot_weight,
                       fill_reuse=args.fill_reuse)
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
