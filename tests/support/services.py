"""Fixtures for the real Postgres and Redis, shared by the integration and end-to-end tiers.

The run's own database is created, migrated and loaded with the sample table at the start
and dropped at the end; the run's Redis keys (broker, results, cache) share one prefix and
are deleted at the end. Without Postgres or Redis those tiers are skipped with the reason,
unless ZIPSCORE_REQUIRE_SERVICES=1 (CI), where they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import psycopg
import pytest
import redis
from psycopg import sql

from tests.support.environment import ADMIN_DATABASE_URL, TEST_DATABASE, TEST_PREFIX
from tests.support.paths import SAMPLE_TABLE
from worker.contract.result_cache import ResultCache, cache_from_settings
from worker.contract.settings import get_settings
from worker.database import migrations
from worker.database import pool as db
from worker.lookups import zipcodes
from worker.lookups.risk_table import parse_text


def _unavailable(reason: str) -> None:
    if os.environ.get("ZIPSCORE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"integration tier required but {reason}", pytrace=False)
    pytest.skip(f"integration tier skipped: {reason}")


@pytest.fixture(scope="session")
def services() -> None:
    """Postgres and Redis answer (or the tier is skipped / failed with the reason)."""
    try:
        with psycopg.connect(ADMIN_DATABASE_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as exc:
        _unavailable(f"Postgres is unreachable ({type(exc).__name__}); start it on 127.0.0.1:5432")
    try:
        redis.Redis.from_url(get_settings().broker, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        _unavailable(f"Redis is unreachable ({type(exc).__name__}); start it on 127.0.0.1:6379")


@pytest.fixture(scope="session")
def database(services: None) -> Iterator[str]:
    """This run's own database, migrated and loaded with the sample risk table."""
    with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEST_DATABASE)))
    try:
        with db.connect() as conn:
            migrations.migrate(conn)
            version = zipcodes.load_rules(conn, parse_text(SAMPLE_TABLE.read_text()))
        cache_from_settings().publish_version(version)
        yield TEST_DATABASE
    finally:
        db.close_pool()
        with psycopg.connect(ADMIN_DATABASE_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(TEST_DATABASE)
                )
            )


@pytest.fixture(scope="session")
def redis_keys(services: None) -> Iterator[redis.Redis]:
    """The real Redis; every key of this run's prefix is deleted at the end."""
    client = redis.Redis.from_url(get_settings().broker)
    yield client
    for key in client.scan_iter(match=f"{TEST_PREFIX}*", count=1000):
        client.delete(key)


@pytest.fixture
def real_cache(redis_keys: redis.Redis) -> ResultCache:
    return cache_from_settings()


@pytest.fixture
def conn(database: str) -> Iterator[psycopg.Connection]:
    with db.connect() as connection:
        yield connection


@pytest.fixture
def restore_table(conn: psycopg.Connection) -> Iterator[None]:
    """Tests may reload the risk table: the sample table is back afterwards (new version)."""
    yield
    version = zipcodes.load_rules(conn, parse_text(SAMPLE_TABLE.read_text()))
    cache_from_settings().publish_version(version)
