"""``isonet2 report STAR``: figures and numbers of a run, on an HTML page and its Markdown twin.

Example: ``isonet2 report tomograms.star --model_dir isonet_maps --output_dir report``.
Writes into ``OUTPUT_DIR``: per tomogram ``<name>_orthoslices.png`` (XY/XZ, raw beside the
corrected/denoised maps), ``<name>_fourier.png`` (log-amplitude XZ Fourier slices: the missing
wedge and its filling), ``<name>_fsc_even_odd.png`` and, with ``--ground_truth``,
``<name>_fsc_ground_truth.png``; with ``--model_dir`` ``training_loss.png`` and the preview
figures; and ``report.html`` / ``report.md`` showing them with a table of the numbers.
"""
from __future__ import annotations

import argparse
import logging

from isonet2core.cli import common
from isonet2core.config import ReportConfig
from isonet2core.report import run_report

log = logging.getLogger(__name__)

_FORMATS = {"html": ("html",), "md": ("md",), "both": ("html", "md")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options (IsoNet2 spellings, :mod:`isonet2core.cli.common`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    """
    common.add_star_argument(parser)
    common.add_option(parser, "output_dir", default="report",
                      help="folder for the page (report.html / report.md) and its PNG figures")
    common.add_option(parser, "model_dir", type=common.none_or(str), default=None,
                      help="output folder of isonet2 refine/denoise (holding loss_history.json, "
                           "config.json, preview/): adds the loss curves, settings and previews")
    common.add_option(parser, "tomo_idx", type=common.index_selection, default=None,
                      help="rlnIndex values of the tomograms to show, e.g. 1,3,5-7; None: all")
    common.add_option(parser, "ground_truth", type=common.none_or(str), default=None,
                      help="folder of ground-truth maps (synthetic data, e.g. isonet2 simulate's "
                           "ground_truth/, same file names as the tomograms): adds Pearson, PSNR, "
                           "FSC and missing-wedge FSC against them")
    common.add_option(parser, "format", default="both", choices=tuple(_FORMATS),
                      help="pages to write: html, md (Markdown) or both")
    common.add_config_options(parser, ReportConfig)


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
    cfg = ReportConfig(formats=_FORMATS[args.format],
                       **common.config_values(ReportConfig, args)).validate()
    pages = run_report.make_report(star_file, args.output_dir, cfg, model_dir=args.model_dir,
                               tomo_idx=args.tomo_idx, ground_truth_dir=args.ground_truth)
    for path in pages.values():
        log.info("report written: %s", path)
    return 0
