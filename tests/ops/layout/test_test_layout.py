"""The tests mirror the package: tests/<tier>/<feature>/test_<module>.py, and what a test
imports lives in tests/support/ (never another test module, never a conftest).

Read from the files' syntax trees; nothing is imported or run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import ROOT

TESTS = ROOT / "tests"
TIERS = {"unit", "integration", "e2e", "drills", "ops"}
# The package's rooms (worker/ and producer/), the exercises, and tests/support itself.
FEATURES = {
    "contract", "broker", "lookups", "batch", "index", "database", "flower", "gateway", "cli",
    "client", "process", "exercises", "support",
}  # fmt: skip
# The ops tier also checks what ships beside the package.
OPS_FEATURES = {"bench", "dependencies", "deploy", "docs", "layout"}
# Test files not moved into their feature yet, each still at its old place: their place and
# their imports, and imports of them, are not held to the rules. Empty this as they move; a
# name that no longer exists fails test_pending_files_still_exist.
PENDING: set[str] = set()
# The code outside tests/ that must never import it.
CODE = ("worker", "producer", "ops", "exercises")


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def python_files(under: Path) -> Iterator[Path]:
    for path in sorted(under.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in the file, function-level ones included."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
            # `from tests.support import fakes` names a support module too.
            yield from ((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)


def is_shared(module: str) -> bool:
    """What a test may import from tests/: the support package and its modules (and, until
    they move, the PENDING files)."""
    pending = {name.removesuffix(".py").replace("/", ".") for name in PENDING}
    if any(module == name or module.startswith(f"{name}.") for name in pending):
        return True
    return module in {"tests", "tests.support"} or module.startswith("tests.support.")


def test_no_test_imports_a_test_module_or_a_conftest() -> None:
    found = [
        f"{relative(path)}:{line} imports {module}"
        for path in python_files(TESTS)
        if relative(path) not in PENDING
        for line, module in imported_modules(path)
        if (module == "tests" or module.startswith("tests.")) and not is_shared(module)
    ]
    assert found == [], "move what they share to tests/support/ or a fixture:\n" + "\n".join(found)


def test_the_code_never_imports_the_tests() -> None:
    found = [
        f"{relative(path)}:{line} imports {module}"
        for top in CODE
        for path in python_files(ROOT / top)
        for line, module in imported_modules(path)
        if module == "tests" or module.startswith("tests.")
    ]
    assert found == [], "\n".join(found)


def test_every_test_file_is_in_its_tier_and_feature() -> None:
    misplaced = []
    for path in python_files(TESTS):
        if not path.name.startswith("test_") or relative(path) in PENDING:
            continue
        parts = path.relative_to(TESTS).parts
        tier, feature = (parts[0], parts[1]) if len(parts) == 3 else ("", "")
        known = FEATURES | (OPS_FEATURES if tier == "ops" else set())
        if tier not in TIERS or feature not in known:
            misplaced.append(relative(path))
    assert misplaced == [], (
        "test files belong at tests/<tier>/<feature>/test_<module>.py, "
        f"tier in {sorted(TIERS)}, feature in {sorted(FEATURES)}:\n" + "\n".join(misplaced)
    )


def test_support_holds_no_tests() -> None:
    support = [relative(p) for p in python_files(TESTS / "support") if p.name.startswith("test_")]
    assert support == []


def is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in node.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(target, ast.Attribute) and target.attr == "fixture":
            return True
    return False


@pytest.mark.parametrize(
    "conftest", [relative(p) for p in python_files(TESTS) if p.name == "conftest.py"]
)
def test_a_conftest_holds_only_fixtures_and_hooks(conftest: str) -> None:
    tree = ast.parse((ROOT / conftest).read_text())
    others = [
        f"{node.name} (line {node.lineno})"
        for node in tree.body
        if isinstance(node, ast.ClassDef)
        or (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and not (node.name.startswith("pytest_") or is_fixture(node))
        )
    ]
    assert others == [], f"{conftest}: move these to tests/support/: {others}"


def test_every_test_directory_is_a_package() -> None:
    directories = {path.parent for path in python_files(TESTS)}
    missing = [relative(d) for d in sorted(directories) if not (d / "__init__.py").exists()]
    assert missing == []


def test_pending_files_still_exist() -> None:
    moved = sorted(name for name in PENDING if not (ROOT / name).exists())
    assert moved == [], f"moved: remove them from PENDING in {relative(Path(__file__))}"
