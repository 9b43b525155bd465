"""The layout's rules that import-linter cannot state (docs/architecture.md).

import-linter (`make lint`) checks who may import whom; these tests keep its lists honest
and check the rest: small modules, and no code that edits `sys.path`.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

from tests.support.paths import ROOT

MAX_MODULE_LINES = 300
CODE_ROOTS = ("worker", "producer", "ops", "tests", "exercises")


def contracts() -> dict[str, dict[str, object]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["name"]: contract for contract in config["contracts"]}


def worker_rooms() -> set[str]:
    """Every module and package directly under worker/, as dotted names."""
    rooms = {f"worker.{path.stem}" for path in (ROOT / "worker").glob("*.py")}
    rooms |= {f"worker.{path.parent.name}" for path in (ROOT / "worker").glob("*/__init__.py")}
    return rooms - {"worker.__init__"}


@pytest.mark.parametrize(
    "name",
    [
        "A producer imports only the contract of the worker side",
        "The contract stands alone: it imports no other room of either side",
    ],
)
def test_the_forbidden_lists_name_every_room_of_the_worker_but_the_contract(name: str) -> None:
    forbidden = set(contracts()[name]["forbidden_modules"])  # type: ignore[call-overload]
    assert worker_rooms() - {"worker.contract"} <= forbidden
    assert "worker.contract" not in forbidden


def python_files(*roots: str) -> list[Path]:
    return sorted(
        path
        for root in roots
        for path in (ROOT / root).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def test_no_module_of_the_worker_or_the_producer_is_over_300_lines() -> None:
    sizes = {
        str(path.relative_to(ROOT)): len(path.read_text().splitlines())
        for path in python_files("worker", "producer")
    }
    assert {path: size for path, size in sizes.items() if size > MAX_MODULE_LINES} == {}


def sys_path_uses(source: str) -> list[int]:
    tree = ast.parse(source)
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            # sys.path.insert(...), sys.path.append(...), site.addsitedir(...)
            if _is_sys_path(node.func.value) or node.func.attr == "addsitedir":
                lines.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for item in targets:
                edited = item.value if isinstance(item, ast.Subscript) else item
                if _is_sys_path(edited):
                    lines.append(node.lineno)
    return sorted(lines)


def _is_sys_path(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "path"
        and isinstance(node.value, ast.Name)
        and node.value.id == "sys"
    )


def test_nothing_edits_sys_path() -> None:
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in python_files(*CODE_ROOTS)
        if (lines := sys_path_uses(path.read_text()))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "source",
    [
        "import sys\nsys.path.insert(0, 'x')\n",
        "import sys\nsys.path.append('x')\n",
        "import sys\nsys.path = ['x']\n",
        "import sys\nsys.path[:0] = ['x']\n",
        "import sys\nsys.path += ['x']\n",
        "import site\nsite.addsitedir('x')\n",
    ],
)
def test_the_sys_path_check_sees_each_way_of_editing_it(source: str) -> None:
    assert sys_path_uses(source) == [2]


def test_reading_sys_path_is_not_editing_it() -> None:
    assert sys_path_uses("import sys\nprint(sys.path[0])\n") == []
