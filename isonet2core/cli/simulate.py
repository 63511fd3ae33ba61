"""``isonet2 simulate --output_dir DIR``: synthetic even/odd tomograms with ground truth.

Maps the options onto :class:`isonet2core.simulation.simulate.SimulationConfig` (defaults are that
class's defaults), validates them before any work and calls
:func:`isonet2core.simulation.simulate.simulate_dataset`, which writes ``DIR/full``, ``DIR/even``,
``DIR/odd``, ``DIR/ground_truth`` (``tomo_001.mrc`` ...), ``DIR/ctf/*.defocus`` (IMOD, nm),
``DIR/tilt/*.tlt`` and ``DIR/acquisition.json``. Prints one line per tomogram written.

``--realistic pm60|lamella`` simulates lamellae from atomic models instead
(:mod:`isonet2core.simulation.lamella`, the data the benchmarks judge restoration on; about 30 s per
64 x 192 x 192 tomogram on 2 cores) at that module's physical defaults (8 A pixels, 3 um
defocus, 300 kV, 100 e/A^2 dose-symmetric, even/odd from frames); of the other options only
``--shape``, ``--n_tomograms`` and ``--seed`` apply.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from isonet2core.cli import common
from isonet2core.simulation import lamella
from isonet2core.simulation.simulate import SimulationConfig, check_memory, simulate_dataset

_DEFAULTS = SimulationConfig()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the command's options (IsoNet2 spellings, :mod:`isonet2core.cli.common`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    """
    add = common.add_option
    d = _DEFAULTS
    add(parser, "output_dir", default=None, aliases=("-o",),
        help="folder to write into (required); full/, even/, odd/, ground_truth/, ctf/, tilt/ "
             "and acquisition.json are created in it, files of the same names replaced")
    add(parser, "n_tomograms", type=int, default=1,
        help="number of tomograms; tomogram i (0-based) uses seed + i")
    add(parser, "shape", type=common.int_list, default=",".join(str(s) for s in d.shape),
        help="volume size z,y,x in voxels (each at least 16)")
    add(parser, "pixel_size", type=float, default=d.pixel_size_a, help="voxel size in Angstrom")
    add(parser, "tilt_min", type=float, default=d.tilt_min_deg, help="lowest tilt angle in degrees")
    add(parser, "tilt_max", type=float, default=d.tilt_max_deg, help="highest tilt angle in degrees")
    add(parser, "tilt_step", type=float, default=d.tilt_step_deg,
        help="tilt increment in degrees; even/odd halves take alternate tilts")
    add(parser, "defocus", type=float, default=d.defocus_a,
        help="defocus in Angstrom, underfocus positive (of the first tomogram)")
    add(parser, "defocus_step", type=float, default=d.defocus_step_a,
        help="defocus change in Angstrom from one tomogram to the next")
    add(parser, "voltage", type=float, default=d.voltage_kv, help="acceleration voltage in kV")
    add(parser, "cs", type=float, default=d.cs_mm, help="spherical aberration in mm")
    add(parser, "ac", type=float, default=d.amplitude_contrast, help="amplitude contrast (0 to 1)")
    add(parser, "dose_snr", type=common.none_or(float), default=d.dose_snr,
        help="signal-to-noise variance ratio of the whole tilt series (each tilt gets "
             "dose_snr / number of tilts); None = noise-free")
    add(parser, "slab_fraction", type=float, default=d.slab_fraction,
        help="thickness of the specimen slab as a fraction of z (0.2 to 1)")
    add(parser, "n_particles", type=common.none_or(int), default=d.n_particles,
        help="number of blobs and ellipsoids; None = scaled with the y*x area")
    add(parser, "n_vesicles", type=common.none_or(int), default=d.n_vesicles,
        help="number of membrane vesicles; None = scaled with the y*x area")
    add(parser, "n_filaments", type=common.none_or(int), default=d.n_filaments,
        help="number of filaments; None = scaled with the y*x area")
    add(parser, "smooth_sigma", type=float, default=d.smooth_sigma_vox,
        help="Gaussian smoothing of the phantom in voxels (0 = none)")
    add(parser, "seed", type=int, default=d.seed, help="random seed of the first tomogram")
    add(parser, "realistic", default=None, choices=tuple(lamella.GEOMETRIES),
        help="simulate lamellae from atomic models in this tilt geometry (pm60: -60..60; lamella: "
             "-50..40 with a 10 degree pre-tilt) instead of blobs; only shape, n_tomograms and seed apply")


def config_from_args(args: argparse.Namespace) -> SimulationConfig:
    """The validated configuration of the command's options.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.

    Returns
    -------
    object
        The command's config dataclass.

    Raises
    ------
    ValueError
        Naming an unusable value.
    """
    return SimulationConfig(
        shape=tuple(args.shape), pixel_size_a=args.pixel_size, tilt_min_deg=args.tilt_min,
        tilt_max_deg=args.tilt_max, tilt_step_deg=args.tilt_step, defocus_a=args.defocus,
        voltage_kv=args.voltage, cs_mm=args.cs, amplitude_contrast=args.ac,
        dose_snr=args.dose_snr, slab_fraction=args.slab_fraction, n_particles=args.n_particles,
        n_vesicles=args.n_vesicles, n_filaments=args.n_filaments,
        smooth_sigma_vox=args.smooth_sigma, defocus_step_a=args.defocus_step,
        seed=args.seed).validate()


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
    if not args.output_dir:
        raise common.CLIError("--output_dir is required")
    if args.n_tomograms < 1:
        raise common.CLIError(f"--n_tomograms must be at least 1, got {args.n_tomograms}")
    out = Path(args.output_dir)
    check_memory(args.shape)
    if args.realistic:
        cfg_l = lamella.geometry_config(args.realistic, shape=tuple(args.shape), seed=args.seed)
        for record in lamella.write_lamella_dataset(out, cfg_l, args.n_tomograms):
            print(f"simulate: {record['name']} (lamella, seed {record['seed']}) -> {record['full']}", flush=True)
        return 0
    cfg = config_from_args(args)

    def report(record: dict) -> None:
        print(f"simulate: {record['name']} (seed {record['seed']}, defocus "
              f"{record['defocus_a']:.0f} A) -> {record['full']}", flush=True)

    simulate_dataset(out, cfg, args.n_tomograms, on_written=report)
    return 0
