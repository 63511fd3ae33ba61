"""The size rules of issue 14, outside tests: no module over 500 lines of code and no function
over 80 (docstrings, comments and blank lines not counted: the numpy docstring sections of the
core are documentation, not size)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE, MAX_FUNCTION = 500, 80


def _sources():
    for top in ("isonet2core", "isonet2scipion", "bench"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "tests" not in path.relative_to(ROOT).parts:
                yield path


def _docstring_lines(tree):
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                lines.update(range(first.lineno, first.end_lineno + 1))
    return lines


def code_lines(source: str, tree=None):
    """``count(first, last)``: lines of code of ``source`` from ``first`` to ``last`` (1-based,
    inclusive)."""
    skip = _docstring_lines(tree or ast.parse(source))
    code = [i not in skip and bool(t.strip()) and not t.strip().startswith("#")
            for i, t in enumerate(source.splitlines(), 1)]
    return lambda first=1, last=len(code): sum(code[first - 1:last])


def test_no_module_over_500_lines_of_code():
    sizes = {str(p.relative_to(ROOT)): code_lines(p.read_text())() for p in _sources()}
    assert len(sizes) > 80
    assert {k: v for k, v in sizes.items() if v > MAX_MODULE} == {}


def test_no_function_over_80_lines_of_code():
    long = {}
    for path in _sources():
        source = path.read_text()
        tree = ast.parse(source)
        count = code_lines(source, tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = count(node.lineno, node.end_lineno)
                if n > MAX_FUNCTION:
                    long[f"{path.relative_to(ROOT)}:{node.name}"] = n
    assert long == {}


def test_the_count_skips_docstrings_comments_and_blank_lines():
    source = 'def f(x):\n    """Doc.\n\n    More.\n    """\n    # note\n\n    y = x\n    return y\n'
    assert code_lines(source)() == 3 and code_lines(source)(6, 8) == 1
