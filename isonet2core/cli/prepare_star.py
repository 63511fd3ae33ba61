"""``isonet2 prepare-star`` (also ``prepare_star``): list tomograms in a tomograms.star.

IsoNet2 spellings: ``--full DIR`` or ``--even DIR --odd DIR``, ``--star_name``,
``--pixel_size auto|X``, ``--defocus X`` or ``a,b,...`` (one per tomogram), ``--cs``,
``--voltage``, ``--ac``, ``--tilt_min``, ``--tilt_max``, ``--create_average True|False``,
``--number_subtomos auto|N``, ``--mask_folder``, ``--coordinate_folder``.
"""
from __future__ import annotations

import argparse

from isonet2core import prepare
from isonet2core.cli import common
from isonet2core.config import PrepareStarConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    folder = common.none_or(str)
    common.add_option(parser, "full", type=folder, default=None,
                      help="folder of full tomograms (.mrc/.rec), when there are no even/odd halves")
    common.add_option(parser, "even", type=folder, default=None,
                      help="folder of even-half tomograms; paired with --odd by file name "
                           "(identical names or names differing by EVN/ODD, even/odd, half1/half2)")
    common.add_option(parser, "odd", type=folder, default=None,
                      help="folder of odd-half tomograms (see --even)")
    common.add_option(parser, "mask_folder", type=folder, default=None,
                      help="folder of masks matched to tomograms by stem (NAME.mrc or NAME_mask.mrc)")
    common.add_option(parser, "coordinate_folder", type=folder, default=None,
                      help="folder of subtomogram coordinates matched by stem (NAME.coords/.star/.txt, "
                           "x y z per line); sets rlnBoxFile and rlnNumberSubtomo")
    common.add_option(parser, "star_name", default="tomograms.star",
                      help="STAR file to write")
    common.add_option(parser, "pixel_size", type=common.none_or(float), default="auto",
                      help="pixel size in Angstrom, or auto to read it from the MRC headers")
    common.add_option(parser, "defocus", type=common.float_list, default="10000",
                      help="defocus in Angstrom at 0 degrees tilt (underfocus positive): one value, "
                           "or one per tomogram in name order, e.g. '[30000,32000]'")
    common.add_option(parser, "cs", type=float, default=2.7, help="spherical aberration in mm")
    common.add_option(parser, "voltage", type=float, default=300.0, help="acceleration voltage in kV")
    common.add_option(parser, "ac", type=float, default=0.1, help="amplitude contrast (0 to 1)")
    common.add_option(parser, "tilt_min", type=float, default=-60.0,
                      help="lowest tilt angle in degrees")
    common.add_option(parser, "tilt_max", type=float, default=60.0,
                      help="highest tilt angle in degrees")
    common.add_option(parser, "tilt_step", type=common.none_or(float), default=None,
                      help="tilt step in degrees (recorded in rlnTiltStep; the missing wedge "
                           "depends only on tilt_min and tilt_max)")
    common.add_option(parser, "create_average", type=common.parse_bool, default=False,
                      help="write full = (even + odd) / 2 into full_average/ beside the STAR file "
                           "(only without --full)")
    common.add_option(parser, "number_subtomos", type=common.none_or(int), default="auto",
                      help="subtomograms per tomogram per epoch, or auto (3000 / number of tomograms)")


def config_from_args(args: argparse.Namespace) -> PrepareStarConfig:
    """Map the IsoNet2 option names onto :class:`PrepareStarConfig` and validate it."""
    return PrepareStarConfig(
        full_dir=args.full, even_dir=args.even, odd_dir=args.odd,
        mask_dir=args.mask_folder, coordinate_dir=args.coordinate_folder,
        star_name=args.star_name, pixel_size_a=args.pixel_size,
        defocus_a=tuple(args.defocus), voltage_kv=args.voltage, cs_mm=args.cs,
        amplitude_contrast=args.ac, tilt_min_deg=args.tilt_min, tilt_max_deg=args.tilt_max,
        tilt_step_deg=args.tilt_step,
        create_average=args.create_average, number_subtomos=args.number_subtomos,
    ).validate()


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    table = prepare.prepare_star(cfg)
    print(f"wrote {table.source}: {len(table)} tomograms")
    return 0
