"""Argument helpers shared by the subcommand modules.

IsoNet2 users paste command lines such as
``isonet2 refine tomograms.star --CTF_mode network --with_preview False --gpuID 0,1``, so
every option is registered under its IsoNet2 spelling (``--pixel_size``) and its dashed twin
(``--pixel-size``); booleans take ``True/False`` values (a bare flag means True); lists are
``"[a,b]"`` or ``"a,b"``; the string ``None`` becomes ``None``.
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable, Dict, Iterable, List, Optional

from isonet2core.config import OptionField, options_of


class CLIError(Exception):
    """A user error found by the command line layer (exit code 2)."""


def parse_bool(text: Any) -> bool:
    """A boolean option value.

    Parameters
    ----------
    text : Any
        ``True/False``, yes/no, 1/0, on/off (any case), or a bool.

    Returns
    -------
    bool
        The value.

    Raises
    ------
    argparse.ArgumentTypeError
        Any other text.
    """
    if isinstance(text, bool):
        return text
    value = str(text).strip().lower()
    if value in ("true", "1", "yes", "y", "on"):
        return True
    if value in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {text!r}")


def none_or(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    """Wrap a converter so that ``None``/``auto``/empty give None.

    Parameters
    ----------
    convert : callable
        Text -> value.

    Returns
    -------
    callable
        Text -> value or None.
    """
    def _convert(text: str):
        if text is None or str(text).strip().lower() in ("none", "auto", ""):
            return None
        return convert(text)
    _convert.__name__ = getattr(convert, "__name__", "value")
    return _convert


def _split_list(text: str) -> List[str]:
    s = str(text).strip()
    if s.startswith(("[", "(")) and s.endswith(("]", ")")):
        s = s[1:-1]
    return [p.strip() for p in s.replace(";", ",").split(",") if p.strip()]


def float_list(text: str) -> tuple:
    """A list of floats.

    Parameters
    ----------
    text : str
        ``"[a,b]"``, ``"a,b"`` or ``"a"``.

    Returns
    -------
    tuple of float
        At least one.

    Raises
    ------
    argparse.ArgumentTypeError
        Any other text.
    """
    try:
        values = tuple(float(p) for p in _split_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or a list of numbers, got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} holds a number that is not finite")
    return values


def int_list(text: str) -> tuple:
    """A list of integers.

    Parameters
    ----------
    text : str
        ``"[a,b]"`` or ``"a,b"``.

    Returns
    -------
    tuple of int
        The values.

    Raises
    ------
    argparse.ArgumentTypeError
        Any other text.
    """
    try:
        return tuple(int(p) for p in _split_list(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a list of integers, got {text!r}") from None


MAX_SELECTED = 100_000
"""Most rlnIndex values one ``tomo_idx`` range may select."""


def index_selection(text: Optional[str]) -> Optional[List[int]]:
    """rlnIndex values (1-based) with ranges.

    Parameters
    ----------
    text : str, optional
        ``"1,3,5-7"``; None or empty for all.

    Returns
    -------
    list of int or None
        ``[1, 3, 5, 6, 7]`` for the example; None for all.
    """
    if text is None or str(text).strip().lower() in ("", "none", "all"):
        return None
    out: List[int] = []
    for part in _split_list(text):
        if "-" in part[1:]:
            a, b = part.split("-", 1)
            try:
                lo, hi = int(a), int(b)
            except ValueError:
                raise argparse.ArgumentTypeError(f"bad index range {part!r} in {text!r}") from None
            if hi < lo:
                raise argparse.ArgumentTypeError(f"bad index range {part!r} in {text!r}")
            if hi - lo >= MAX_SELECTED:   # "1-99999999999" must not build a list of 1e11 ints
                raise argparse.ArgumentTypeError(f"index range {part!r} in {text!r} selects too many "
                                                 f"tomograms (at most {MAX_SELECTED})")
            out.extend(range(lo, hi + 1))
        else:
            try:
                out.append(int(part))
            except ValueError:
                raise argparse.ArgumentTypeError(f"bad index {part!r} in {text!r}") from None
    return out


def add_option(parser: argparse.ArgumentParser, name: str, *, type: Callable = str,
               default: Any = None, help: str, dest: Optional[str] = None,
               aliases: tuple = (), choices=None) -> None:
    """Register ``--name`` (IsoNet2 spelling) and its dashed twin, plus any aliases. A boolean
    option (``type=parse_bool``) also accepts a bare flag meaning True.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser.
    name : str
        Option name (underscores).
    type : callable
        Text -> value.
    default : Any
        Value when absent.
    help : str
        Help line.
    dest : str, optional
        Attribute name (default ``name``).
    aliases : tuple of str
        Further spellings.
    choices : sequence, optional
        Allowed values.
    """
    flags = [f"--{name}"]
    dashed = name.replace("_", "-")
    if dashed != name:
        flags.append(f"--{dashed}")
    for a in aliases:
        flags.append(a if a.startswith("-") else f"--{a}")
    kwargs = dict(type=type, default=default, dest=dest or name,
                  help=f"{help} (default: {default})")
    if choices is not None:
        kwargs["choices"] = choices
    if type is parse_bool:
        kwargs["nargs"] = "?"
        kwargs["const"] = True
        kwargs["metavar"] = "True|False"
    parser.add_argument(*flags, **kwargs)


def option_parser(opt: OptionField) -> Callable[[str], Any]:
    """The text -> value converter of a config option, from its type: ``True/False`` for bools,
    ``None``/``auto``/empty -> None where the field is Optional, lists for tuples (rlnIndex
    selections where the option says ``indices``).

    Parameters
    ----------
    opt : OptionField
        The option.

    Returns
    -------
    callable
        Text -> value.
    """
    if opt.spec.indices:
        return index_selection
    if opt.base is bool:
        convert: Callable[[str], Any] = parse_bool
    elif opt.base is tuple:
        convert = float_list if opt.element is float else int_list
    elif opt.base is float:
        convert = finite_float
    else:
        convert = opt.base
    return none_or(convert) if opt.optional else convert


def finite_float(text: str) -> float:
    """A finite number (``inf`` and ``nan`` are refused: no option of the core means them).

    Parameters
    ----------
    text : str
        The option's text.

    Returns
    -------
    float
        The value.

    Raises
    ------
    argparse.ArgumentTypeError
        For text that is no number or not a finite one.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _default_text(value: Any) -> Any:
    return ",".join(str(v) for v in value) if isinstance(value, tuple) else value


def add_config_options(parser: argparse.ArgumentParser, cls, *, exclude: Iterable[str] = (),
                       defaults: Optional[Dict[str, Any]] = None) -> None:
    """Register every option of a config class under its IsoNet2 spelling.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The command's parser.
    cls : type
        A config dataclass (:func:`isonet2core.config.options_of` lists its options).
    exclude : iterable of str
        Field names not offered by this command.
    defaults : dict, optional
        Field name -> default, where a command resolves one (denoise's loss).
    """
    defaults = defaults or {}
    for opt in options_of(cls):
        if opt.name in exclude:
            continue
        unit = f" [{opt.spec.unit}]" if opt.spec.unit else ""
        add_option(parser, opt.flag, type=option_parser(opt),
                   default=_default_text(defaults.get(opt.name, opt.default)),
                   help=opt.spec.help + unit, aliases=opt.spec.aliases, choices=opt.choices)


def config_values(cls, args: argparse.Namespace, *, exclude: Iterable[str] = ()) -> Dict[str, Any]:
    """The field values of a config class read from parsed arguments, as
    :func:`add_config_options` registered them (lists become tuples; None for a field that cannot
    be None means its default).

    Parameters
    ----------
    cls : type
        The config dataclass.
    args : argparse.Namespace
        Parsed arguments.
    exclude : iterable of str
        Fields left out.

    Returns
    -------
    dict
        Field name -> value.
    """
    values = {}
    for opt in options_of(cls):
        if opt.name in exclude:
            continue
        value = getattr(args, opt.flag)
        if value is None and not opt.optional:
            value = opt.default
        values[opt.name] = tuple(value) if isinstance(value, list) else value
    return values


def add_map_step_arguments(parser: argparse.ArgumentParser, config_cls, *, input_column: str,
                           input_help: str, output_dir: str, output_help: str) -> None:
    """The options of a command that turns each selected tomogram's map into one new map (deconv,
    make-mask): the STAR, ``--input_column``, ``--output_dir``, the config's options, ``--tomo_idx``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The subcommand's parser.
    config_cls : type
        The command's config dataclass.
    input_column, output_dir : str
        Their defaults.
    input_help, output_help : str
        Their help lines.
    """
    add_star_argument(parser)
    add_option(parser, "input_column", default=input_column, help=input_help)
    add_option(parser, "output_dir", default=output_dir, aliases=("-o",), help=output_help)
    add_config_options(parser, config_cls)
    add_option(parser, "tomo_idx", type=index_selection, default=None,
               help="rlnIndex values of the tomograms to process, e.g. '1,3-5'; None = all")


def add_star_argument(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``star_file`` as a positional argument (IsoNet2 style) or ``--star_file``.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser.
    required : bool
        One of the two must be given.
    """
    parser.add_argument("star_pos", nargs="?", metavar="star_file", default=None,
                        help="the tomograms STAR file")
    parser.add_argument("--star_file", "--star-file", dest="star_opt", default=None,
                        help="the tomograms STAR file (same as the positional argument)")


def star_path(args: argparse.Namespace) -> str:
    """The STAR file given as the positional argument or ``--star_file``.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.

    Returns
    -------
    str
        The path.

    Raises
    ------
    CLIError
        Neither was given.
    """
    path = args.star_opt or args.star_pos
    if not path:
        raise CLIError("a STAR file is required (positional star_file or --star_file)")
    return path


def add_device_options(parser: argparse.ArgumentParser) -> None:
    """``--gpuID``, ``--device`` and ``--ncpus`` (training and predict).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        The parser.
    """
    add_option(parser, "gpuID", default=None, aliases=("--gpu_id", "--gpus"),
               help="GPU ids to use, e.g. '0' or '0,1' (several GPUs use DistributedDataParallel)")
    add_option(parser, "device", default="auto", choices=("auto", "cpu", "cuda"),
               help="compute device: auto (CUDA when available), cpu or cuda")
    add_option(parser, "ncpus", type=int, default=4, help="CPU worker threads")
