"""The official IsoNet2 command line's spelling rules, applied in one place.

The official program parses its command line with python-fire; users paste its commands. Before
argparse sees them, :func:`official_argv` rewrites the tokens after the subcommand by fire's
rules:

* a single-letter option (``-o`` or ``--o``) is the one argument of the official command that
  starts with that letter (``prepare_star -e EVEN -o ODD``, ``refine tomograms.star -o maps``);
  a letter that several start with is refused naming them, as the official program does;
* a bare option (no value follows: the next token is an option, or none is left) means True
  (``--resume``), and ``--noNAME`` means ``--NAME False``;
* ``--name=value`` and ``-n=value``; dashes in names are underscores (``--tilt-min``).

Values are never touched (``--tilt_min -60`` keeps its negative number). Options unknown here
are left for argparse to refuse (exit 2). The official commands' argument lists below are
facts about that program (its ``isonet.py``, commit 6c5c7bb), used only for the shortcuts.
"""
from __future__ import annotations

import argparse
import re
from typing import Dict, List, Sequence

from isonet2core.cli.common import CLIError

OFFICIAL_ARGUMENTS: Dict[str, Sequence[str]] = {
    "prepare-star": ("full", "even", "odd", "mask_folder", "coordinate_folder", "star_name",
                     "pixel_size", "defocus", "cs", "voltage", "ac", "tilt_min", "tilt_max",
                     "create_average", "number_subtomos"),
    "deconv": ("star_file", "output_dir", "input_column", "snrfalloff", "deconvstrength",
               "highpassnyquist", "chunk_size", "overlap_rate", "ncpus", "phaseflipped",
               "tomo_idx"),
    "make-mask": ("star_file", "output_dir", "input_column", "patch_size", "density_percentage",
                  "std_percentage", "z_crop", "tomo_idx"),
    "predict": ("star_file", "model", "output_dir", "gpuID", "input_column", "apply_mw_x1",
                "isCTFflipped", "padding_factor", "tomo_idx", "output_prefix", "save_slices"),
    "denoise": ("star_file", "output_dir", "gpuID", "ncpus", "arch", "pretrained_model",
                "cube_size", "epochs", "batch_size", "loss_func", "save_interval",
                "learning_rate", "learning_rate_min", "mixed_precision", "CTF_mode",
                "isCTFflipped", "do_phaseflip_input", "bfactor", "clip_first_peak_mode",
                "snrfalloff", "deconvstrength", "highpassnyquist", "with_preview",
                "prev_tomo_idx"),
    "refine": ("star_file", "output_dir", "gpuID", "ncpus", "method", "arch",
               "pretrained_model", "cube_size", "epochs", "input_column", "batch_size",
               "loss_func", "learning_rate", "save_interval", "learning_rate_min", "mw_weight",
               "apply_mw_x1", "mixed_precision", "CTF_mode", "clip_first_peak_mode", "bfactor",
               "isCTFflipped", "do_phaseflip_input", "noise_level", "noise_mode",
               "random_rot_weight", "with_preview", "prev_tomo_idx", "snrfalloff",
               "deconvstrength", "highpassnyquist"),
}

_HELP = ("-h", "--help")


def is_option(token: str) -> bool:
    """Whether a token names an option (fire's rule: ``--x...`` or ``-`` and a letter), so that
    negative numbers are values.

    Parameters
    ----------
    token : str
        A command-line token.

    Returns
    -------
    bool
        True for an option.
    """
    return token.startswith("--") or re.match(r"^-[a-zA-Z]", token) is not None


def official_argv(command: str, argv: Sequence[str],
                  parser: argparse.ArgumentParser) -> List[str]:
    """Tokens after the subcommand rewritten by the rules of the module docstring.

    Parameters
    ----------
    command : str
        The subcommand.
    argv : sequence of str
        Its tokens.
    parser : argparse.ArgumentParser
        The subcommand's parser.

    Returns
    -------
    list of str
        Tokens argparse understands.

    Raises
    ------
    CLIError
        A single letter that several official arguments start with.
    """
    known = parser._option_string_actions      # option string -> argparse action
    official = OFFICIAL_ARGUMENTS.get(command, ())
    out: List[str] = []
    for i, token in enumerate(argv):
        if not is_option(token) or token in _HELP or token == "--":
            out.append(token)
            continue
        key, equals, value = token.lstrip("-").partition("=")
        name = key.replace("-", "_")
        if len(name) == 1 and f"--{name}" not in known and f"-{name}" not in known:
            matches = [a for a in official if a[0] == name]
            if len(matches) > 1:
                raise CLIError(f"{token.split('=')[0]} is ambiguous: it could be "
                               + ", ".join(f"--{m}" for m in matches))
            if matches:
                name = matches[0]
        bare = not equals and (i + 1 == len(argv) or is_option(argv[i + 1]))
        action = known.get(f"--{name}")
        if action is None and bare and name.startswith("no") and f"--{name[2:]}" in known:
            out += [f"--{name[2:]}", "False"]
        elif action is None:
            out.append(token)                    # unknown: argparse refuses it
        elif equals:
            out.append(f"--{name}={value}")
        elif bare and action.nargs not in (0, "?"):
            out += [f"--{name}", "True"]
        else:
            out.append(f"--{name}")
    return out
