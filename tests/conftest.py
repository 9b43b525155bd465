"""Shared test setup: every test run gets its own database name and Redis key prefix.

They are set in the environment before any zipscore module reads its settings, so the
Celery app, the cache and the CLI subprocesses of this run all use them, and a run never
touches a running `make run` (or another test run) on the same Postgres and Redis.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

from tests.support.environment import TEST_DATABASE_URL, TEST_PREFIX
from tests.support.settings import MakeSettings, make_settings

os.environ["ZIPSCORE_DATABASE_URL"] = TEST_DATABASE_URL
os.environ["ZIPSCORE_REDIS_PREFIX"] = TEST_PREFIX
# A fast health index retry policy for this run (countdowns of 0-1 s, two retries), so the
# integration tier sees retries end within seconds; the defaults are tested explicitly.
os.environ["ZIPSCORE_INDEX_RETRY_MAX_RETRIES"] = "2"
os.environ["ZIPSCORE_INDEX_RETRY_BACKOFF_SECONDS"] = "1"
os.environ["ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS"] = "1"

pytest_plugins = ["tests.support.resources", "tests.support.services"]
TIERS = ("integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of tests/integration and tests/e2e with its tier (`-m "not e2e"`)."""
    for item in items:
        for tier in TIERS:
            if tier in item.path.parts:
                item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(autouse=True)
def _root_logger_restored() -> Iterator[None]:
    """CLI commands invoked in-process configure logging; no test inherits another's."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(name="make_settings")
def settings_factory() -> MakeSettings:
    """`make_settings(**overrides) -> Settings`: the environment and the overrides, no .env."""
    return make_settings
