"""Each concept has one owner (issue 29): the training methods' names are spelled only in
``isonet2core/config.py`` (its ``METHOD_TRAITS`` table); every other module of the core and the
plugin asks that table (``method_traits``, ``refine_method``, ``DENOISE_METHOD``)."""
import ast
from pathlib import Path

from isonet2core.config import DENOISE_METHOD, METHOD_TRAITS, METHODS, method_traits, refine_method

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "isonet2core" / "config.py"
# "isonet2" alone is also the program's name and a STAR layout: the names unique to methods
METHOD_ONLY_NAMES = {"isonet2-n2n", "n2n"}


def _product_modules():
    for package in ("isonet2core", "isonet2scipion"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "tests" not in path.relative_to(ROOT).parts:
                yield path


def test_method_names_are_spelled_only_by_their_owner():
    spelled = []
    for path in _product_modules():
        if path == OWNER:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in METHOD_ONLY_NAMES:
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert spelled == []


def test_the_method_table():
    assert tuple(METHOD_TRAITS) == METHODS
    assert [(t.halves, t.fills_wedge, t.output) for t in map(method_traits, METHODS)] == [
        (True, True, "corrected"), (False, True, "corrected"), (True, False, "denoised")]
    assert refine_method(halves=True) == "isonet2-n2n" and refine_method(halves=False) == "isonet2"
    assert not method_traits(DENOISE_METHOD).fills_wedge
