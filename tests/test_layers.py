"""The package's layering: no import cycles between modules or between packages, and reading a study
imports no torch. Imports inside functions count (they only hide a cycle); ``TYPE_CHECKING`` ones do not run."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest

import headsearch

ROOT = Path(headsearch.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement that runs, at any depth, except under ``if TYPE_CHECKING:``."""
    found, stack = [], list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        stack.extend(ast.iter_child_nodes(node))
    return found


def import_graph() -> nx.DiGraph:
    """headsearch's modules and the headsearch modules each imports (``from pkg import name`` points at
    ``pkg.name`` when that is a module, else at ``pkg``), with the packages whose ``__init__`` that runs."""
    modules = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _runtime_imports(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                # importing a.b.c runs package a.b's __init__ first, unless the importer is inside a.b
                parents = [target.rsplit(".", k)[0] for k in range(1, target.count("."))]
                for module in [target, *(p for p in parents if not name.startswith(p + "."))]:
                    if module in modules and module != name:
                        graph.add_edge(name, module)
    return graph


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph()  # parsed once for every check of this module


def test_no_import_cycle_between_modules(graph: nx.DiGraph) -> None:
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles}"


def test_no_import_cycle_between_packages(graph: nx.DiGraph) -> None:
    """Each module counted as its package below ``headsearch`` (``headsearch.models.hf.model`` -> ``models``)."""
    packages = nx.DiGraph()
    for a, b in graph.edges:
        pa, pb = (n.split(".")[1] if n.count(".") else n for n in (a, b))
        if pa != pb:
            packages.add_edge(pa, pb)
    cycles = list(nx.simple_cycles(packages))
    assert not cycles, f"import cycles between packages: {cycles}"


def test_reading_a_study_imports_no_torch() -> None:
    code = ("import sys, headsearch.study_config, headsearch.core, headsearch.heads, headsearch.data, headsearch.searchspace; "
            "heavy = sorted({'torch', 'transformers', 'optuna', 'ray', 'mlflow'} & set(sys.modules)); "
            "assert not heavy, heavy")
    subprocess.run([sys.executable, "-c", code], check=True)


LAYERS = [  # top to bottom, as docs/architecture.md draws them; a module imports only from its layer or below
    {"__main__", "cli", "study", "study_config", "study_init", "export", "serve_check", "report", "testing"},
    {"search"},
    {"strategies"},
    {"objectives", "pareto", "cost"},
    {"analysis"},
    {"models"},
    {"core", "heads", "data", "searchspace", "errors", "resources", "_fs", "_process"},
]


def test_imports_go_down_the_layers_of_the_architecture_page(graph: nx.DiGraph) -> None:
    level = {package: i for i, layer in enumerate(LAYERS) for package in layer}
    upward = []
    for a, b in graph.edges:
        pa, pb = (n.split(".")[1] if n.count(".") else n for n in (a, b))
        if pa == "headsearch" or pb == "headsearch":  # the package's own __init__ (HeadConfig and the errors)
            continue
        assert pa in level and pb in level, f"{pa} or {pb} has no layer in LAYERS (docs/architecture.md)"
        if level[pb] < level[pa]:
            upward.append(f"{a} -> {b}")
    assert not upward, f"imports up the layers: {upward}"
