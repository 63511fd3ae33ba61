"""Entry point of the ``isonet2`` command: dispatch to one module per subcommand.

Both spellings work: ``isonet2 prepare-star`` and ``isonet2 prepare_star``. User errors
(``ValueError``, ``FileNotFoundError``, ...) become a one-line message on stderr and exit code
2; an interrupted run exits 130 (Ctrl-C) or 143 (SIGTERM; both remove the temporary files of
unfinished writes). Tracebacks are shown only with ``ISONET2_DEBUG=1``. Progress
is logged to stderr at ``ISONET2_LOG_LEVEL`` (default INFO).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from typing import Iterator, List, Optional

from isonet2core import __version__
from isonet2core.cli.common import CLIError
from isonet2core.io import locks

# subcommand -> (module under isonet2core.cli, one-line help)
SUBCOMMANDS = {
    "simulate": ("simulate", "synthesise even/odd tomograms with ground truth (tests, demo, benchmarks)"),
    "prepare-star": ("prepare_star", "list tomograms and acquisition parameters in a tomograms.star"),
    "deconv": ("deconv", "CTF deconvolution (Wiener-like, IsoNet1/Warp style)"),
    "make-mask": ("make_mask", "sampling masks from local density and standard deviation"),
    "denoise": ("denoise", "train a Noise2Noise network on even/odd halves"),
    "refine": ("refine", "train the IsoNet2 network (missing wedge, denoising, CTF)"),
    "predict": ("predict", "apply a trained network to tomograms"),
    "report": ("report", "orthoslices, Fourier slices, loss curves and FSC of a run"),
}


_LINE_BREAKS = {ord(c): repr(c)[1:-1] for c in "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"}


def _one_line(message: object) -> str:
    """``message`` with its line breaks escaped (``\\n``), so that an error is one line."""
    return str(message).translate(_LINE_BREAKS)


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line and exits 2 (no usage dump)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)   # --epoch is not --epochs
        super().__init__(*args, **kwargs)

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {_one_line(message)}\n")


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's ``scancel``, ``kill``): unwinds like Ctrl-C, so that every atomic
    write removes its temporary file and every lock is released."""


def _raise_terminated(signum, frame):
    raise Terminated()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` in the block (main thread only; the handler before is
    restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _canonical(name: str) -> str:
    return name.replace("_", "-")


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``isonet2`` parser.

    Parameters
    ----------
    command : str, optional
        Only this subcommand gets its options (all when None).

    Returns
    -------
    argparse.ArgumentParser
        The parser.
    """
    parser = _Parser(prog="isonet2", description="IsoNet2 cryo-ET restoration (isonet2core)")
    parser.add_argument("--version", action="version", version=f"isonet2core {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, aliases=[name.replace("-", "_")] if "-" in name else [],
                           help=help_text, description=help_text)
        if command is not None and _canonical(command) == name:  # only the one in use
            importlib.import_module(f"isonet2core.cli.{module}").add_arguments(p)
    return parser


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The parser of ``command`` (either spelling) inside ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    raise KeyError(command)


def main(argv: Optional[List[str]] = None) -> int:
    """Run ``isonet2 ARGV``.

    Parameters
    ----------
    argv : list of str, optional
        Default ``sys.argv[1:]``.

    Returns
    -------
    int
        Exit code: 0, 2 for user errors, 130 when interrupted, 143 when terminated (SIGTERM).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command is not None and _canonical(command) not in SUBCOMMANDS:
        sys.stderr.write(f"isonet2: error: unknown command {command!r}; "
                         f"choose from {', '.join(SUBCOMMANDS)}\n")
        return 2
    parser = build_parser(command)
    try:
        if command is not None:      # the official program's spellings (cli/compat.py)
            from isonet2core.cli import compat
            at = argv.index(command) + 1
            argv = argv[:at] + compat.official_argv(_canonical(command), argv[at:],
                                                    _subparser(parser, command))
        args, unknown = parser.parse_known_args(argv)
        if unknown:     # named with the subcommand (argparse names only the program)
            sub = _subparser(parser, command) if command is not None else parser
            sub.error(f"unrecognized arguments: {' '.join(unknown)}")
    except SystemExit as exc:
        return int(exc.code or 0)
    except CLIError as exc:
        sys.stderr.write(f"isonet2 {_canonical(command or '')}: error: {_one_line(exc)}\n")
        return 2
    if args.command is None:
        parser.print_help()
        return 2
    logging.basicConfig(level=os.environ.get("ISONET2_LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    module = importlib.import_module(f"isonet2core.cli.{SUBCOMMANDS[_canonical(args.command)][0]}")
    locks.set_command(["isonet2", *argv])
    try:
        with _sigterm_interrupts():
            return int(module.run(args) or 0)
    except Terminated:
        sys.stderr.write("isonet2: terminated\n")
        return 143
    except KeyboardInterrupt:
        sys.stderr.write("isonet2: interrupted\n")
        return 130
    except (CLIError, ValueError, OSError, FloatingPointError, MemoryError) as exc:  # OSError: FileNotFoundError & co.
        if os.environ.get("ISONET2_DEBUG"):
            raise
        sys.stderr.write(f"isonet2 {_canonical(args.command)}: error: {_one_line(exc)}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
