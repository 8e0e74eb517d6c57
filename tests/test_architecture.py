"""The packages' rooms, read from the source: the direction of imports, no cycles, and no code
outside ``models/`` that branches on a model kind's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import models
from helpers import ROOT

PACKAGES = ("runner", "models", "ensembles")
FRAMEWORKS = ("hydra", "omegaconf", "ray", "mlflow")
# python -m ensembles is a thin shim over runner/reensemble.py, which reads MLflow
SHIMS = {"ensembles/__main__.py"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    return {
        _module_name(p): p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))
    }


def _imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports, at the top or inside functions, absolute names."""
    out: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("package", ["models", "ensembles"])
def test_pure_packages_import_no_framework(package):
    found = {
        str(path.relative_to(ROOT)): sorted(
            {_top(n) for n in _imports(path, module)} & set(FRAMEWORKS)
        )
        for module, path in _sources().items()
        if _top(module) == package and str(path.relative_to(ROOT)) not in SHIMS
    }
    assert not {k: v for k, v in found.items() if v}, found


def test_ensembles_import_nothing_of_models_or_runner():
    found = {
        str(path.relative_to(ROOT)): sorted(
            n for n in _imports(path, module) if _top(n) in ("models", "runner")
        )
        for module, path in _sources().items()
        if _top(module) == "ensembles" and str(path.relative_to(ROOT)) not in SHIMS
    }
    assert not {k: v for k, v in found.items() if v}, found


def test_models_import_nothing_of_runner():
    found = {
        module: sorted(n for n in _imports(path, module) if _top(n) == "runner")
        for module, path in _sources().items()
        if _top(module) == "models"
    }
    assert not {k: v for k, v in found.items() if v}, found


def test_no_import_cycle_between_modules():
    """A depth-first search over the project's module graph finds no cycle (imports inside
    functions count too: a lazy import still couples the two modules)."""
    sources = _sources()
    graph = {}
    for module, path in sources.items():
        targets = set()
        for name in _imports(path, module):
            while name and name not in sources:  # "from a.b import c" names a.b.c or a.b
                name = name.rpartition(".")[0]
            if name and name != module and not module.startswith(name + "."):
                targets.add(name)
        graph[module] = targets
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            pytest.fail("import cycle: " + " -> ".join(cycle))


def test_no_code_outside_models_compares_with_a_model_kind_name():
    """Kinds own their behaviour: no ``== "mlp"`` or ``in ("transfer", ...)`` elsewhere."""
    names = set(models.REGISTRY)
    hits = []
    for path in [
        *ROOT.joinpath("runner").rglob("*.py"),
        *ROOT.joinpath("ensembles").rglob("*.py"),
        *ROOT.joinpath("benchmarks").rglob("*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    values = (
                        side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [side]
                    )
                    for value in values:
                        if isinstance(value, ast.Constant) and value.value in names:
                            hits.append(f"{path.relative_to(ROOT)}:{node.lineno} {value.value!r}")
    assert not hits, hits
