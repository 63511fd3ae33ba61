"""Property-based tests: malformed STAR files and command lines give clean errors, never a
traceback or a hang.

* ``TomogramsTable.read`` on arbitrary text, bytes and near-valid STAR tables returns a table
  or raises ``ValueError`` / ``OSError`` (``FileNotFoundError`` is one);
* ``isonet2 <command> ...`` with arbitrary option/value sequences returns an exit code (never
  raises); a failure is exit 2 with one line on stderr. Hangs: each example has a hypothesis
  deadline, and the inputs that could once allocate without bound (huge index ranges) are also
  run in a subprocess with a timeout.
"""
from __future__ import annotations

import argparse
import string
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from reliability_helpers import assert_one_error_line, cli_env, run_main

from isonet2core.cli import common
from isonet2core.cli.main import SUBCOMMANDS, build_parser
from isonet2core.io import star

FUZZ = settings(max_examples=150, deadline=2000, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

_WORKDIR = Path(tempfile.mkdtemp(prefix="isonet2-fuzz-"))


@pytest.fixture(autouse=True)
def _keep_torch_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# --- the STAR reader -------------------------------------------------------------------------
def _read(text_or_bytes) -> None:
    path = _WORKDIR / "fuzz.star"
    if isinstance(text_or_bytes, bytes):
        path.write_bytes(text_or_bytes)
    else:
        path.write_text(text_or_bytes, encoding="utf-8", errors="surrogatepass")
    try:
        table = star.TomogramsTable.read(path)
    except (ValueError, OSError) as exc:
        assert str(path) in str(exc), f"the error does not name the file: {exc}"
        return
    # what was accepted is usable: every row has a name, an index and a positive pixel size
    for row in range(len(table)):
        assert table.tomo_name(row) and table.index(row) is not None
        assert table.pixel_size_a(row) > 0


KNOWN = sorted(star.COLUMN_ORDER)
_cell = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10 ** 20, max_value=10 ** 20).map(str),
    st.sampled_from(["None", "none", '""', "''", "nan", "<NA>", "-", "1e309", "0", "-0.0", "t1",
                     "a.mrc", "/abs/path/map.mrc", "dir/", "data_", "loop_", "_rlnX", "#", '"a b"',
                     "'q'", "\"unterminated", "Half1", "TRUE", "\u00e9\u00e8", "1,2"]),
    st.text(alphabet=string.ascii_letters + string.digits + "._/-\"'#", min_size=1, max_size=12),
)


@st.composite
def star_tables(draw):
    """Near-valid STAR text: a data block, a loop of known and unknown columns, rows of
    arbitrary cells (ragged rows included), optional header noise."""
    block = draw(st.sampled_from(["data_global", "data_", "data_other", "data_global\n\ndata_x", ""]))
    columns = draw(st.lists(st.one_of(st.sampled_from(KNOWN), st.from_regex(r"rln[A-Z][a-z]{1,8}", fullmatch=True)),
                            min_size=0, max_size=8))
    n_rows = draw(st.integers(min_value=0, max_value=4))
    lines = [draw(st.sampled_from(["", "# version 50001", "# comment"])), block, "", "loop_"]
    lines += [f"_{c} #{i}" for i, c in enumerate(columns, 1)]
    for _ in range(n_rows):
        width = draw(st.sampled_from([len(columns), max(0, len(columns) - 1), len(columns) + 1]))
        lines.append("  ".join(draw(_cell) for _ in range(width)))
    if draw(st.booleans()):   # a key/value (non-loop) block instead
        lines = [block, ""] + [f"_{c} {draw(_cell)}" for c in columns]
    return "\n".join(lines) + draw(st.sampled_from(["\n", "", "\n\n", "\r\n"]))


@FUZZ
@given(star_tables())
@example("data_global\n\nloop_\n_rlnTomoName #1\n_rlnPixelSize #2\nt1 1e309\n")
@example("data_global\n\nloop_\n_rlnTomoName #1\n_rlnTomoReconstructedTomogram #2\n_rlnPixelSize #3\n"
         "t1 a.mrc 5 extra\n")
@example("data_global\n\n_rlnTomoName t1\n_rlnPixelSize 5\n_rlnTomoReconstructedTomogram a.mrc\n")
def test_star_reader_on_near_valid_tables(text):
    _read(text)


@FUZZ
@given(st.one_of(st.text(max_size=400), st.binary(max_size=400)))
@example(b"\xff\xfe\x00data_global")
@example("data_global\nloop_\n_rlnTomoName #1\n\x00\n")
def test_star_reader_on_arbitrary_text_and_bytes(data):
    _read(data)


# --- the command line ------------------------------------------------------------------------
def _option_strings(command: str):
    parser = build_parser(command)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = []
    for action in sub.choices[command]._actions:
        flags += [f for f in action.option_strings if f not in ("-h", "--help")]
    return sorted(flags)


COMMANDS = [c for c in SUBCOMMANDS if c not in ("report", "simulate")]
_value = st.one_of(
    st.sampled_from(["None", "auto", "True", "False", "0", "-1", "1", "16", "1e9", "nan", "inf", "-inf",
                     "[1,2]", "1,3-5", "5-1", "1-99999999999", "-3", "", " ", "cuda", "cpu",
                     "unet-small", "network", "L2", "x.star", "nope.pt", "--", "-",
                     "99999999999999999999", "1.5", "0x10", "\u00e9"]),
    st.integers(min_value=-10 ** 12, max_value=10 ** 12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet=string.printable, max_size=10),
)


@st.composite
def command_lines(draw):
    command = draw(st.sampled_from(COMMANDS))
    flags = _option_strings(command)
    argv = [draw(st.sampled_from([command, command.replace("-", "_")]))]
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        kind = draw(st.integers(min_value=0, max_value=5))
        if kind == 0:
            argv.append(draw(_value))                        # a positional
        elif kind == 1:
            argv.append(draw(st.sampled_from(flags)))        # a flag without its value
        else:
            argv += [draw(st.sampled_from(flags)), draw(_value)]
    return argv


@FUZZ
@given(argv=command_lines())
@example(argv=["predict", "x.star", "nope.pt", "--ncpus", "0"])
@example(argv=["refine", "x.star", "--tomo_idx", "1-99999999999"])
@example(argv=["deconv", "--star_file", "x.star", "--chunk_size", "8"])
@example(argv=["make_mask", "x.star", "--z_crop", "nan"])
@example(argv=["prepare-star", "--full", "nope", "--pixel_size", "-1"])
def test_command_lines_exit_cleanly(argv, monkeypatch):
    monkeypatch.chdir(_WORKDIR)   # an empty folder: no STAR or model of these names exists
    rc, _, err = run_main(argv)
    assert isinstance(rc, int)
    if rc != 0:
        assert rc == 2, (argv, rc, err)
        assert_one_error_line(err)


def test_huge_index_range_does_not_hang_in_a_real_process(tmp_path):
    """``--tomo_idx 1-99999999999`` once expanded to a list of 1e11 integers."""
    result = subprocess.run([sys.executable, "-m", "isonet2core", "deconv", "x.star", "--tomo_idx",
                             "1-99999999999"], cwd=tmp_path, env=cli_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "1-99999999999")


def test_index_selection_bounds():
    assert common.index_selection("1,3-5") == [1, 3, 4, 5]
    with pytest.raises(argparse.ArgumentTypeError, match="too many"):
        common.index_selection("1-99999999999")
