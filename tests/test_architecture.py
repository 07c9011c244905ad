"""The package's imports run one way, read from the source with `ast` (function-level imports included):
no circle between files, every package imports only the layers below it (docs/architecture.md), and
nothing imports the test references (torchvision, timm) at run time."""
import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reslab"
# Bottom to top. A module may import its own package and anything in a lower layer.
LAYERS = [("errors", "utils", "version"), ("models",), ("data",), ("hub",), ("training",),
          ("api", "inference", "analysis", "export", "experiments"), ("cli",)]


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """The reslab modules (and top-level third-party names) a file imports, anywhere in it."""
    tree = ast.parse(path.read_text())
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            for a in node.names:  # `from . import x` imports the module x
                out.add(f"{target}.{a.name}")
    return out


@functools.lru_cache(maxsize=1)
def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    g = {}
    for name, path in files.items():  # a module's own packages are imported before it anyway: no edge
        g[name] = {t for t in imports_of(path) if t in files and t != name and not name.startswith(t + ".")}
    return g


def layer_of(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else ""
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    return len(LAYERS)  # reslab/__init__, __main__: above everything


def test_no_import_circle_between_files():
    g = graph()
    state, stack, cycles = {}, [], []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.parametrize("module", sorted(graph()))
def test_imports_run_down_the_layers(module):
    if layer_of(module) >= len(LAYERS):
        return
    up = [t for t in graph()[module] if layer_of(t) > layer_of(module)]
    assert not up, f"{module} (layer {layer_of(module)}) imports {up} from higher layers (docs/architecture.md)"


def test_models_know_nothing_of_hub_data_or_training():
    for path in (PACKAGE / "models").rglob("*.py"):
        bad = [t for t in imports_of(path) if t.startswith(("reslab.hub", "reslab.training", "reslab.data",
                                                              "reslab.api"))]
        assert not bad, f"{path.name} imports {bad}"


def test_nothing_imports_the_test_references_at_run_time():
    for path in PACKAGE.rglob("*.py"):
        bad = [t for t in imports_of(path) if t.split(".")[0] in ("torchvision", "timm")]
        assert not bad, f"{path.relative_to(PACKAGE.parent)} imports {bad}: reslab must run without them"


def test_release_tools_live_outside_the_package():
    assert not (PACKAGE / "hub" / "ship.py").exists()
    assert (PACKAGE.parent / "tools" / "ship_weights.py").is_file()
