"""The declared dependencies match the code: what it imports is declared, and pinned.

A module imported directly but reached only through another package's dependencies breaks
the day that package drops it; an unpinned build backend builds differently tomorrow. Each
room may import only what its install brings: the contract and the producer the plain
package's dependencies, the worker its `worker` extra, the gateway its `gateway` extra.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
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


def imported_top_level_modules(*paths: Path, leave_out: tuple[Path, ...] = ()) -> set[str]:
    found: set[str] = set()
    files = [file for path in paths for file in ([path] if path.is_file() else path.rglob("*.py"))]
    for path in files:
        if any(path.is_relative_to(left) for left in leave_out):
            continue
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


def declared(*extras: str) -> set[str]:
    requirements = list(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        requirements += PYPROJECT["project"]["optional-dependencies"][extra]
    return {requirement_name(r) for r in requirements}


WORKER, PRODUCER = ROOT / "worker", ROOT / "producer"
# `zipscore doctor --require-free-ports` is the one producer module on the worker extra: the
# doctor runs the database administration, which needs that extra anyway.
PORTS = PRODUCER / "ports.py"
ROOMS = {
    "the contract": (
        imported_top_level_modules(WORKER / "contract"),
        declared(),
    ),
    "the client and the CLI": (
        imported_top_level_modules(PRODUCER, leave_out=(PRODUCER / "gateway", PORTS)),
        declared(),
    ),
    "the worker": (
        imported_top_level_modules(WORKER, PORTS, leave_out=(WORKER / "contract",)),
        declared("worker"),
    ),
    "the gateway": (imported_top_level_modules(PRODUCER / "gateway"), declared("gateway")),
}


@pytest.mark.parametrize("room", ROOMS)
def test_every_module_a_room_imports_is_a_dependency_of_its_install(room: str) -> None:
    imported, allowed = ROOMS[room]
    distributions = packages_distributions()
    undeclared = {}
    for module in imported:
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & allowed:
            undeclared[module] = sorted(names)
    assert not undeclared, f"{room} imports what its install does not declare: {undeclared}"


def test_a_plain_install_brings_no_database_driver_flower_or_web_stack() -> None:
    assert declared() & {"psycopg", "psycopg-pool", "flower", "fastapi", "uvicorn"} == set()


def test_runtime_and_build_requirements_are_pinned() -> None:
    extras = [r for group in PYPROJECT["project"]["optional-dependencies"].values() for r in group]
    for requirement in (
        PYPROJECT["project"]["dependencies"] + extras + PYPROJECT["build-system"]["requires"]
    ):
        assert "==" in requirement, requirement


def test_the_development_process_manager_is_not_a_runtime_dependency() -> None:
    runtime = declared(*PYPROJECT["project"]["optional-dependencies"])
    dev = {requirement_name(r) for r in PYPROJECT["dependency-groups"]["dev"]}
    assert "honcho" not in runtime
    assert "honcho" in dev
