"""The package's layout as the README draws it: imports point down the pipeline, never back up, no circle.

Every import of hwsearch and cost_models (module level and inside functions alike) is read
from the source; each module belongs to one layer, and may import only modules of its own
package or of a layer below. A new module in a new folder must be given its layer here.
"""
import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
# bottom to top; a module imports only from its own package or from a lower layer
LAYERS = [
    ["hwsearch.errors", "hwsearch.atomic_write"],
    ["hwsearch.budget"],
    ["hwsearch.config"],
    ["hwsearch.workloads", "hwsearch.graph", "hwsearch.storage", "hwsearch.cluster"],
    ["hwsearch.compression"],
    ["hwsearch.export"],
    ["cost_models", "hwsearch.proxy"],
    ["hwsearch.study"],
    ["hwsearch.runs"],
    ["hwsearch.codesign", "hwsearch.nightly"],
    ["hwsearch.api"],
    ["hwsearch.commands"],
    ["hwsearch.__main__", "hwsearch"],
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for top in ("hwsearch", "cost_models") for p in sorted((ROOT / top).rglob("*.py"))}


def package(module: str) -> str:
    """The longest layer entry `module` falls under."""
    found = [entry for layer in LAYERS for entry in layer if module == entry or module.startswith(entry + ".")]
    if not found:
        raise AssertionError(f"{module} is in no layer of tests/test_layout.py: give it one")
    return max(found, key=len)


def layer(module: str) -> int:
    return next(i for i, entries in enumerate(LAYERS) if package(module) in entries)


def imports(module: str) -> set[str]:
    """The project modules `module` imports (a name imported from a package counts as its submodule if it is one)."""
    path, found = MODULES[module], set()
    base = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                source = ".".join(base.split(".")[:len(base.split(".")) - node.level + 1] + ([source] if source else []))
            for alias in node.names:
                found.add(f"{source}.{alias.name}" if f"{source}.{alias.name}" in MODULES else source)
    return {name for name in found if name in MODULES and name != module}


GRAPH = nx.DiGraph([(m, i) for m in MODULES for i in imports(m)])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_its_own_package_or_layers_below(module):
    up = [i for i in imports(module) if package(i) != package(module) and layer(i) >= layer(module)]
    assert not up, f"{module} (layer {layer(module)}) imports {up}: move the import's target down or the code up"


def test_no_modules_import_each_other_in_a_circle():
    circles = [sorted(c) for c in nx.strongly_connected_components(GRAPH) if len(c) > 1]
    assert not circles, f"modules importing each other in a circle: {circles}"


def test_the_pipelines_packages_each_have_a_face_that_exports_names():
    names = sorted(face.parent.name for face in (ROOT / "hwsearch").glob("*/__init__.py"))
    assert {"workloads", "graph", "compression", "proxy", "study", "runs", "cluster"} <= set(names)
    for name in names:
        face = ROOT / "hwsearch" / name / "__init__.py"
        tree = ast.parse(face.read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"hwsearch/{name}/__init__.py has no docstring"
        assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in n.targets)
                   for n in tree.body), f"hwsearch/{name}/__init__.py exports nothing (__all__)"
