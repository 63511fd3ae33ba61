"""``isonet2 deconv STAR``: CTF deconvolution (IsoNet1/Warp Wiener-like filter) per tomogram.

Reads each selected tomogram (``--input_column``; the IsoNet2 default ``rlnTomoName`` means
the tomogram itself: ``rlnTomoReconstructedTomogram``, else the mean of the even/odd halves),
deconvolves it with the STAR's microscope parameters (pixel size, defocus, voltage, Cs,
amplitude contrast), writes ``OUTPUT_DIR/<rlnTomoName>_deconv.mrc`` and records it in
``rlnDeconvTomoName`` with the settings used in ``rlnSnrFalloff`` / ``rlnDeconvStrength`` (the
STAR is rewritten atomically after every tomogram). Every input is checked before any work
starts.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from isonet2core import maps, mrcio, star
from isonet2core.cli import common
from isonet2core.config import DeconvConfig

logger = logging.getLogger(__name__)

SUFFIX = "_deconv.mrc"


# --- the command -----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = common.add_option
    common.add_star_argument(parser)
    add(parser, "input_column", default=star.TOMO_NAME,
        help="STAR column of the maps to deconvolve; rlnTomoName means the tomogram "
             "(rlnTomoReconstructedTomogram, else the mean of the even/odd halves)")
    add(parser, "output_dir", default="deconv", aliases=("-o",),
        help="folder for the deconvolved tomograms (<rlnTomoName>_deconv.mrc)")
    common.add_config_options(parser, DeconvConfig)
    add(parser, "tomo_idx", type=common.index_selection, default=None,
        help="rlnIndex values of the tomograms to process, e.g. '1,3-5'; None = all")


def run(args: argparse.Namespace) -> int:
    star_file = Path(common.star_path(args))
    cfg = DeconvConfig(**common.config_values(DeconvConfig, args)).validate()
    table = star.TomogramsTable.read(star_file)
    rows = table.rows_for(args.tomo_idx)
    output_dir = Path(args.output_dir)

    # validate everything before the first FFT
    jobs = []
    for row in rows:
        microscope = table.microscope(row)
        sources = maps.input_maps(table, row, args.input_column)
        info = maps.check_maps(sources)[0]
        if info.voxel_size_a > 0 and abs(info.voxel_size_a - microscope.pixel_size_a) > 0.01 * microscope.pixel_size_a:
            logger.warning("%s: header voxel size %.4g A differs from the STAR pixel size %.4g A; "
                           "using the STAR's", info.path, info.voxel_size_a, microscope.pixel_size_a)
        target = output_dir / f"{table.tomo_name(row)}{SUFFIX}"
        mrcio.check_not_input(target, sources)
        jobs.append((row, microscope, sources, target))
    output_dir.mkdir(parents=True, exist_ok=True)   # an unusable folder fails here, not after work

    from isonet2core.deconv import deconvolve  # torch only once the inputs are known good

    for row, microscope, sources, target in jobs:
        volume = maps.read_map(sources)
        out = deconvolve(volume, microscope, cfg)
        mrcio.write_mrc(target, out, microscope.pixel_size_a, protect=sources)
        table.set_path(row, star.DECONV, target)
        table.set_value(row, star.SNR_FALLOFF, cfg.snrfalloff)
        table.set_value(row, star.DECONV_STRENGTH, cfg.deconvstrength)
        table.write(star_file)
        print(f"deconv: {table.tomo_name(row)} -> {target}")
    return 0
