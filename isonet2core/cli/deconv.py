"""``isonet2 deconv STAR``: CTF deconvolution (IsoNet1/Warp Wiener-like filter) per tomogram.

Reads each selected tomogram (``--input_column``; the IsoNet2 default ``rlnTomoName`` means
the tomogram itself: ``rlnTomoReconstructedTomogram``, else the mean of the even/odd halves),
deconvolves it with the STAR's microscope parameters (pixel size, defocus, voltage, Cs,
amplitude contrast), writes ``OUTPUT_DIR/<rlnTomoName>_deconv.mrc`` and records it in
``rlnDeconvTomoName`` with the settings used in ``rlnSnrFalloff`` / ``rlnDeconvStrength`` (the
STAR is rewritten atomically after every tomogram). Every input is checked before any work
starts.

The helpers :func:`input_maps`, :func:`check_maps`, :func:`read_map`, :func:`check_output`
and :func:`star_relative` are shared with ``make-mask``.
"""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import List, Sequence

import numpy as np

from isonet2core import mrcio, star
from isonet2core.cli import common
from isonet2core.config import DeconvConfig

logger = logging.getLogger(__name__)

SUFFIX = "_deconv.mrc"


# --- helpers shared with make-mask ----------------------------------------------------------
def input_maps(table: star.TomogramsTable, row: int, column: str) -> List[Path]:
    """The map file(s) of ``row`` to read for ``column``: one path, or the two halves to average.

    ``column`` is a path column of the STAR, or ``rlnTomoName`` meaning the tomogram itself.
    An empty cell falls back to ``rlnTomoReconstructedTomogram``, then to the mean of
    ``rlnTomoReconstructedTomogramHalf1/2``. ``ValueError`` for an unknown column or no map.
    """
    if column != star.TOMO_NAME and column not in star.PATH_COLUMNS:
        raise ValueError(f"input_column {column!r} is not a map column; use {star.TOMO_NAME} "
                         f"or one of {', '.join(sorted(star.PATH_COLUMNS))}")
    for candidate in ((column,) if column != star.TOMO_NAME else ()) + (star.TOMO_FULL,):
        if table.value(row, candidate) is not None:
            if candidate != column and column != star.TOMO_NAME:
                logger.info("%s: %s is empty, using %s", table.tomo_name(row), column, candidate)
            return [table.path(row, candidate)]
    if table.value(row, star.TOMO_HALF1) is not None and table.value(row, star.TOMO_HALF2) is not None:
        return [table.path(row, star.TOMO_HALF1), table.path(row, star.TOMO_HALF2)]
    raise ValueError(f"tomogram {table.tomo_name(row)}: no map in {column}, {star.TOMO_FULL} "
                     f"or the half maps")


def check_maps(paths: Sequence[Path]) -> mrcio.MRCInfo:
    """Check the headers, then the data (finite, not constant; one streamed read); the halves of
    a pair must have one shape and voxel size. Returns the first map's header."""
    infos = [mrcio.read_header(p) for p in paths]
    mrcio.check_same_grid(infos)
    for info in infos:
        mrcio.check_data(info.path, info=info)
    return infos[0]


def read_map(paths: Sequence[Path]) -> np.ndarray:
    """Read one map, or the mean of two half maps, as float32 ``(z, y, x)``; checked finite and
    non-constant."""
    data = mrcio.read_mrc(paths[0])[0]
    if len(paths) > 1:
        for p in paths[1:]:
            data += mrcio.read_mrc(p)[0]
        data /= np.float32(len(paths))
    mrcio.check_finite_and_nonconstant(data, " + ".join(str(p) for p in paths))
    return data


def check_output(target: Path, sources: Sequence[Path]) -> None:
    """``ValueError`` when writing ``target`` would overwrite one of the input maps."""
    for src in sources:
        if target.resolve() == src.resolve() or (target.exists() and os.path.samefile(src, target)):
            raise ValueError(f"output {target} would overwrite the input {src}; "
                             "choose another --output_dir")


def star_relative(path: Path, star_file: Path) -> str:
    """How to record ``path`` in ``star_file``: relative to the STAR's folder when inside it,
    else absolute."""
    path = Path(path).absolute()
    folder = Path(star_file).absolute().parent
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)


# --- the command -----------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = common.add_option
    common.add_star_argument(parser)
    add(parser, "input_column", default=star.TOMO_NAME,
        help="STAR column of the maps to deconvolve; rlnTomoName means the tomogram "
             "(rlnTomoReconstructedTomogram, else the mean of the even/odd halves)")
    add(parser, "output_dir", default="deconv", aliases=("-o",),
        help="folder for the deconvolved tomograms (<rlnTomoName>_deconv.mrc)")
    add(parser, "snrfalloff", type=float, default=1.0,
        help="how fast the assumed SNR falls with frequency; larger values filter high "
             "frequencies more")
    add(parser, "deconvstrength", type=float, default=1.0,
        help="overall deconvolution strength: the SNR is scaled by 10**deconvstrength")
    add(parser, "highpassnyquist", type=float, default=0.02,
        help="fraction of Nyquist below which a smooth high-pass removes the lowest frequencies")
    add(parser, "chunk_size", type=common.none_or(int), default=None,
        help="deconvolve in cubic chunks of this many voxels (large tomograms); None = whole volume")
    add(parser, "overlap_rate", type=float, default=0.25,
        help="overlap between chunks as a fraction of chunk_size")
    add(parser, "ncpus", type=int, default=4, help="CPU threads for the FFTs")
    add(parser, "phaseflipped", type=common.parse_bool, default=False,
        help="the tomograms are already phase-flipped (the filter uses |CTF|)")
    add(parser, "tomo_idx", type=common.index_selection, default=None,
        help="rlnIndex values of the tomograms to process, e.g. '1,3-5'; None = all")


def run(args: argparse.Namespace) -> int:
    star_file = Path(common.star_path(args))
    cfg = DeconvConfig(snrfalloff=args.snrfalloff, deconvstrength=args.deconvstrength,
                       highpassnyquist=args.highpassnyquist, chunk_size=args.chunk_size,
                       overlap_rate=args.overlap_rate, ncpus=args.ncpus,
                       phaseflipped=args.phaseflipped).validate()
    table = star.TomogramsTable.read(star_file)
    rows = table.rows_for(args.tomo_idx)
    output_dir = Path(args.output_dir)

    # validate everything before the first FFT
    jobs = []
    for row in rows:
        microscope = table.microscope(row)
        sources = input_maps(table, row, args.input_column)
        info = check_maps(sources)
        if info.voxel_size_a > 0 and abs(info.voxel_size_a - microscope.pixel_size_a) > 0.01 * microscope.pixel_size_a:
            logger.warning("%s: header voxel size %.4g A differs from the STAR pixel size %.4g A; "
                           "using the STAR's", info.path, info.voxel_size_a, microscope.pixel_size_a)
        target = output_dir / f"{table.tomo_name(row)}{SUFFIX}"
        check_output(target, sources)
        jobs.append((row, microscope, sources, target))
    output_dir.mkdir(parents=True, exist_ok=True)   # an unusable folder fails here, not after work

    from isonet2core.deconv import deconvolve  # torch only once the inputs are known good

    for row, microscope, sources, target in jobs:
        volume = read_map(sources)
        out = deconvolve(volume, microscope, cfg)
        mrcio.write_mrc(target, out, microscope.pixel_size_a, protect=sources)
        table.set_value(row, star.DECONV, star_relative(target, star_file))
        table.set_value(row, star.SNR_FALLOFF, cfg.snrfalloff)
        table.set_value(row, star.DECONV_STRENGTH, cfg.deconvstrength)
        table.write(star_file)
        print(f"deconv: {table.tomo_name(row)} -> {target}")
    return 0
