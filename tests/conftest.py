"""Shared test setup: every test run gets its own database name and Redis key prefix.

They are set in the environment before any zipscore module reads its settings, so the
Celery app, the cache and the CLI subprocesses of this run all use them, and a run never
touches a running `make run` (or another test run) on the same Postgres and Redis.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import pytest

if TYPE_CHECKING:
    from worker.contract.settings import Settings

RUN_ID = uuid.uuid4().hex[:10]
ADMIN_DATABASE_URL = os.environ.get(
    "ZIPSCORE_TEST_ADMIN_DATABASE_URL",
    os.environ.get("ZIPSCORE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
TEST_DATABASE = f"zipscore_test_{RUN_ID}"
TEST_DATABASE_URL = urlunsplit(urlsplit(ADMIN_DATABASE_URL)._replace(path=f"/{TEST_DATABASE}"))
TEST_PREFIX = f"zipscore-test-{RUN_ID}"

os.environ["ZIPSCORE_DATABASE_URL"] = TEST_DATABASE_URL
os.environ["ZIPSCORE_REDIS_PREFIX"] = TEST_PREFIX
# A fast health index retry policy for this run (countdowns of 0-1 s, two retries), so the
# integration tier sees retries end within seconds; the defaults are tested explicitly.
os.environ["ZIPSCORE_INDEX_RETRY_MAX_RETRIES"] = "2"
os.environ["ZIPSCORE_INDEX_RETRY_BACKOFF_SECONDS"] = "1"
os.environ["ZIPSCORE_INDEX_RETRY_BACKOFF_MAX_SECONDS"] = "1"

pytest_plugins = ["tests.plugins.resources", "tests.services"]
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


@pytest.fixture
def make_settings() -> Callable[..., Settings]:
    """`make_settings(**overrides)`: Settings from the arguments and defaults, no .env file."""
    # Imported here: zipscore's settings must be read after the environment above is set.
    from worker.contract.settings import Settings

    def make(**overrides: Any) -> Settings:
        return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]

    return make
