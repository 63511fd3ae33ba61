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


def _module_imports(path: Path, package: str):
    """The package modules a module imports anywhere: when loaded, inside functions (lazy imports)
    and for type checking alike."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(package):
            yield node.module
            for alias in node.names:          # from package import module
                yield f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith(package))


def test_no_import_circle_in_the_core():
    """No core module imports, even lazily or for types only, a module that imports it back."""
    core = ROOT / "isonet2core"
    modules = {".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
               for p in core.rglob("*.py")}
    graph = {m: {i for i in _module_imports(p, "isonet2core") if i in modules and i != m}
             for m, p in modules.items()}
    state = {}

    def visit(module, stack):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", " -> ".join(stack + [module])
        state[module] = "open"
        for imported in sorted(graph[module]):
            visit(imported, stack + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])
