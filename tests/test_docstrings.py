"""Every public function and method of the core documents each argument and its result in
numpy sections (``Parameters``, ``Returns`` or ``Yields``), with shapes and units (issue 14);
one-line accessors (no argument, a body of one ``return``) get a one-line docstring instead (issue 29)."""
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

MODULES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "isonet2core").rglob("*.py"))


def _section(doc: str, title: str):
    """The lines of a numpy section (None when absent)."""
    m = re.search(rf"^{title}\n-{{{len(title)}}}\n(.*?)(?:\n\n[A-Z][a-z]+\n-+\n|\Z)", doc, re.S | re.M)
    return None if m is None else m.group(1).splitlines()


def _documented_names(lines):
    names = set()
    for line in lines:
        if line and not line.startswith(" "):
            names.update(n.strip().lstrip("*") for n in line.split(" : ")[0].split(","))
    return names


def _public_functions(tree):
    def visit(node, prefix):
        for n in ast.iter_child_nodes(node):
            if isinstance(n, ast.ClassDef) and not n.name.startswith("_"):
                yield from visit(n, prefix + n.name + ".")
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and not n.name.startswith("_"):
                yield prefix + n.name, n
    yield from visit(tree, "")


def problems(path: Path):
    """What is missing from the docstrings of ``path``'s public functions."""
    found = []
    for name, fn in _public_functions(ast.parse(path.read_text())):
        doc = ast.get_docstring(fn) or ""
        body = [n for n in fn.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        args = [a.arg for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
                if a.arg not in ("self", "cls")]
        args += [a.arg for a in (fn.args.vararg, fn.args.kwarg) if a is not None]
        if doc and len(body) == 1 and isinstance(body[0], ast.Return) and not args:
            continue                                   # a one-line accessor: its docstring suffices
        if args:
            section = _section(doc, "Parameters")
            missing = set(args) - _documented_names(section or [])
            if section is None or missing:
                found.append(f"{name}: Parameters misses {sorted(missing)}")
        returns = fn.returns is not None and not (isinstance(fn.returns, ast.Constant) and fn.returns.value is None)
        is_property = any(isinstance(d, ast.Name) and d.id == "property" for d in fn.decorator_list)
        if returns and not is_property and _section(doc, "Returns") is None and _section(doc, "Yields") is None:
            found.append(f"{name}: no Returns section")
    return found


@pytest.mark.parametrize("module", MODULES)
def test_public_functions_document_parameters_and_returns(module):
    assert problems(ROOT / module) == []


def test_every_core_module_is_checked():
    assert len(MODULES) > 50 and "isonet2core/training/trainer.py" in MODULES


def test_the_checker_finds_a_missing_parameter(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('def f(a: int, b: int) -> int:\n    """Sum.\n\n    Parameters\n    ----------\n'
                   '    a : int\n        One.\n\n    Returns\n    -------\n    int\n        Sum.\n    """\n'
                   '    c = a + b\n    return c\n\n\ndef g(x):\n    """No sections."""\n    x.clear()\n\n\n'
                   'class K:\n    def size(self) -> int:\n        """The size (a one-line accessor)."""\n'
                   '        return 2\n\n    def twice(self, x: int) -> int:\n        """Twice ``x``."""\n        return 2 * x\n')
    assert problems(bad) == ["f: Parameters misses ['b']", "g: Parameters misses ['x']",
                             "K.twice: Parameters misses ['x']", "K.twice: no Returns section"]
