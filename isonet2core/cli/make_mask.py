"""``isonet2 make-mask STAR``: sampling masks from local density and local standard deviation.

For each selected tomogram, reads ``--input_column`` (default ``rlnDeconvTomoName``; an empty
cell falls back to ``rlnTomoReconstructedTomogram``, then to the mean of the even/odd halves),
computes :func:`isonet2core.masking.make_mask`, writes ``OUTPUT_DIR/<rlnTomoName>_mask.mrc``
(float32 0/1) and records it in ``rlnMaskName`` (the STAR is rewritten atomically after every
tomogram). Every input is checked before any work starts.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from isonet2core import maps, mrcio, star
from isonet2core.cli import common
from isonet2core.config import MaskConfig

SUFFIX = "_mask.mrc"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = common.add_option
    common.add_star_argument(parser)
    add(parser, "input_column", default=star.DECONV,
        help="STAR column of the maps to mask (empty cells fall back to "
             "rlnTomoReconstructedTomogram, then to the mean of the even/odd halves)")
    add(parser, "output_dir", default="mask", aliases=("-o",),
        help="folder for the masks (<rlnTomoName>_mask.mrc)")
    common.add_config_options(parser, MaskConfig)
    add(parser, "tomo_idx", type=common.index_selection, default=None,
        help="rlnIndex values of the tomograms to process, e.g. '1,3-5'; None = all")


def run(args: argparse.Namespace) -> int:
    star_file = Path(common.star_path(args))
    cfg = MaskConfig(**common.config_values(MaskConfig, args)).validate()
    table = star.TomogramsTable.read(star_file)
    rows = table.rows_for(args.tomo_idx)
    output_dir = Path(args.output_dir)

    jobs = []
    for row in rows:
        pixel_size_a = table.microscope(row).pixel_size_a
        sources = maps.input_maps(table, row, args.input_column)
        maps.check_maps(sources)
        target = output_dir / f"{table.tomo_name(row)}{SUFFIX}"
        mrcio.check_not_input(target, sources)
        jobs.append((row, pixel_size_a, sources, target))
    output_dir.mkdir(parents=True, exist_ok=True)   # an unusable folder fails here, not after work

    from isonet2core.masking import make_mask

    for row, pixel_size_a, sources, target in jobs:
        mask = make_mask(maps.read_map(sources), cfg)
        mrcio.write_mrc(target, mask, pixel_size_a, protect=sources)
        table.set_path(row, star.MASK, target)
        table.write(star_file)
        print(f"make-mask: {table.tomo_name(row)} -> {target} ({100.0 * mask.mean():.1f}% kept)")
    return 0
