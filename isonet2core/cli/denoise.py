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

from isonet2core import star
from isonet2core.cli import common
from isonet2core.cli.refine import (
    add_training_arguments,
    finish_with_predict,
    plan_tomograms,
    run_settings,
    train_config,
)
from isonet2core.training.trainer import train

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_training_arguments(parser, output_dir="denoise", method="n2n")   # the IsoNet2 program's folder
    common.add_option(parser, "with_predict", type=common.parse_bool, default=False,
                      help="denoise the tomograms with the final model after training")


def run(args: argparse.Namespace) -> int:
    star_file = common.star_path(args)
    table = star.TomogramsTable.read(star_file)
    rows = table.rows_for(args.tomo_idx)
    cfg = train_config(args, "n2n")
    settings = run_settings(args, cfg)
    specs = plan_tomograms(table, rows, cfg)
    result = train(cfg, specs, settings)
    log.info("model: %s", result.model_path)
    if args.with_predict:
        finish_with_predict(star_file, result, args, cfg)
    return 0
