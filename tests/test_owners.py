"""Each concept has one owner (issue 29): the training methods' names are spelled only in
``isonet2core/config.py`` (its ``METHOD_TRAITS`` table), the networks' names only in
``isonet2core/nets/registry.py`` and the model file's keys only in ``isonet2core/io/model_file.py``;
every other module of the core and the plugin asks the owner. No import circle in the core."""
import ast
from pathlib import Path

from isonet2core.config import DENOISE_METHOD, METHOD_TRAITS, METHODS, method_traits, refine_method
from isonet2core.io import model_file
from isonet2core.nets.registry import ARCHITECTURES, FAMILIES, LADDERS, arch_name

ROOT = Path(__file__).resolve().parents[1]
OWNER = ROOT / "isonet2core" / "config.py"
# "isonet2" alone is also the program's name and a STAR layout: the names unique to methods
METHOD_ONLY_NAMES = {"isonet2-n2n", "n2n"}


def _product_modules():
    for package in ("isonet2core", "isonet2scipion"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if "tests" not in path.relative_to(ROOT).parts:
                yield path


# the model file's keys that name nothing else (generic words such as "config", "epoch" or
# "history" are keys of other files too): every "*_state" key, the averaging count, the format
# entries and the program's weights key
MODEL_FILE_ONLY_KEYS = {k for k in model_file.FIELDS if k.endswith("_state")} | {
    "ema_updates", "format_version", "model_state_dict"}


def _spelled_outside(owner: Path, literals) -> list:
    """``path:line 'literal'`` for every string constant of ``literals`` in a product module
    other than ``owner``."""
    spelled = []
    for path in _product_modules():
        if path == owner:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in literals:
                spelled.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    return spelled


def test_method_names_are_spelled_only_by_their_owner():
    assert _spelled_outside(OWNER, METHOD_ONLY_NAMES) == []


def test_architecture_names_are_spelled_only_by_the_registry():
    assert len(ARCHITECTURES) == len(FAMILIES) * len(LADDERS) == 6
    assert arch_name("small") == "unet-small" and arch_name("large", "plain-unet") == "plain-unet-large"
    assert _spelled_outside(ROOT / "isonet2core" / "nets" / "registry.py", set(ARCHITECTURES)) == []


def test_model_file_keys_are_spelled_only_by_the_model_file():
    assert {"model_state", "model2_state", "train_model_state", "optimizer_state"} <= MODEL_FILE_ONLY_KEYS
    assert _spelled_outside(ROOT / "isonet2core" / "io" / "model_file.py", MODEL_FILE_ONLY_KEYS) == []


def test_the_literal_check_finds_a_spelling(tmp_path, monkeypatch):
    """The check itself: a module spelling a network name is reported with its line."""
    bad = ROOT / "isonet2core" / "nets" / "registry.py"
    monkeypatch.setattr(__import__(__name__), "_product_modules", lambda: iter([bad]))
    assert _spelled_outside(OWNER, {"plain-unet"}) == [f"isonet2core/nets/registry.py:{_line_of(bad, 'plain-unet')} 'plain-unet'"]


def _line_of(path: Path, literal: str) -> int:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and node.value == literal:
            return node.lineno
    raise AssertionError(literal)


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
