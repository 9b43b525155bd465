"""The declared dependencies match the code: what it imports is declared, and pinned.

A module imported directly but reached only through another package's dependencies breaks
the day that package drops it; an unpinned build backend builds differently tomorrow.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

from tests.support.paths import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
OWN = {"worker", "producer"}


def requirement_name(requirement: str) -> str:
    name = re.split(r"[\[=<>!~; ]", requirement, maxsplit=1)[0]
    return name.lower().replace("_", "-")


def optional_imports(tree: ast.AST) -> set[int]:
    """Ids of import nodes inside a `try` that catches ImportError: used when installed."""
    optional: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(handler.type, ast.Name) and handler.type.id == "ImportError"
            for handler in node.handlers
        ):
            optional |= {id(inner) for statement in node.body for inner in ast.walk(statement)}
    return optional


def imported_top_level_modules(folder: Path) -> set[str]:
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        optional = optional_imports(tree)
        for node in ast.walk(tree):
            if id(node) in optional:
                continue
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found - OWN - set(sys.stdlib_module_names) - {"__future__"}


def test_every_module_the_service_imports_is_a_declared_runtime_dependency() -> None:
    declared = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    distributions = packages_distributions()
    undeclared = {}
    for module in imported_top_level_modules(ROOT / "worker") | imported_top_level_modules(
        ROOT / "producer"
    ):
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & declared:
            undeclared[module] = sorted(names)
    assert not undeclared, f"imported but not declared in [project.dependencies]: {undeclared}"


def test_runtime_and_build_requirements_are_pinned() -> None:
    for requirement in PYPROJECT["project"]["dependencies"] + PYPROJECT["build-system"]["requires"]:
        assert "==" in requirement, requirement


def test_the_development_process_manager_is_not_a_runtime_dependency() -> None:
    runtime = {requirement_name(r) for r in PYPROJECT["project"]["dependencies"]}
    dev = {requirement_name(r) for r in PYPROJECT["dependency-groups"]["dev"]}
    assert "honcho" not in runtime
    assert "honcho" in dev
