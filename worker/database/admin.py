"""Operator commands behind `zipscore db ...`, `zipscore index remove-month` and `zipscore doctor`.

These talk to Postgres directly with the worker's database driver. The CLI reaches this
module through the `zipscore.admin` entry point (worker/contract/admin.py), so an install
without the `worker` extra fails to load it and says which extra to add.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis
from psycopg_pool import ConnectionPool, PoolTimeout

from worker.contract.errors import ErrorCode, ZipscoreError, echo
from worker.contract.index_cache import index_cache_from_settings
from worker.contract.redis_health import memory_problems
from worker.contract.result_cache import cache_from_settings, redis_client
from worker.contract.settings import get_settings
from worker.database import migrations
from worker.database import pool as db
from worker.index import service as index
from worker.index.store import PostgresHealthIndexStore
from worker.lookups import zipcodes
from worker.lookups.risk_table import parse_file

START_HINT = (
    "start them (Debian: `pg_ctlcluster 15 main start`; `redis-server --daemonize yes`) "
    "or run `docker compose up -d postgres redis`"
)


def _where(url: str) -> str:
    """host:port of a URL, never its credentials."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}".rstrip(":")


def _database_unavailable(exc: Exception) -> ZipscoreError:
    where = _where(get_settings().database)
    return ZipscoreError(
        ErrorCode.BACKEND_UNAVAILABLE,
        f"Postgres at {where} is unreachable ({type(exc).__name__}); {START_HINT}",
    )


def migrate() -> list[int]:

    try:
        with db.connect() as conn:
            return migrations.migrate(conn)
    except psycopg.OperationalError as exc:
        raise _database_unavailable(exc) from None


def refuse_oversized(path: Path, limit: int) -> None:
    """Refuse a risk-table file of more than `limit` bytes before it is parsed.

    The size is counted while reading, a block at a time, not taken from the file's
    metadata: a device or a pipe (`/dev/zero`) reports a size of 0 and never ends.

    Raises:
        ZipscoreError: BAD_INPUT_FILE if it cannot be read or is larger.
    """
    size = 0
    try:
        with path.open("rb") as handle:
            while block := handle.read(min(1024 * 1024, limit + 1)):
                size += len(block)
                if size > limit:
                    raise ZipscoreError(
                        ErrorCode.BAD_INPUT_FILE,
                        f"{echo(str(path))} is larger than {limit // (1024 * 1024)} MB "
                        "(ZIPSCORE_TABLE_MAX_MB): not a risk table",
                    )
    except OSError as exc:
        raise ZipscoreError(
            ErrorCode.BAD_INPUT_FILE, f"cannot read {echo(str(path))}: {type(exc).__name__}"
        ) from None


def load_zipcodes(path: Path, *, if_empty: bool = False) -> dict[str, Any]:
    """Parse the table at `path` (all or nothing), load it, and retire cached answers."""
    refuse_oversized(path, get_settings().table_max_mb * 1024 * 1024)
    try:
        rules = parse_file(path)  # in blocks: a 100 MB line is never held whole
    except (OSError, UnicodeDecodeError) as exc:
        raise ZipscoreError(
            ErrorCode.BAD_INPUT_FILE, f"cannot read {echo(str(path))}: {type(exc).__name__}"
        ) from None
    try:
        with db.connect() as conn:
            if if_empty and zipcodes.table_size(conn) > 0:
                return {"loaded": False, "version": zipcodes.table_version(conn)}
            version = zipcodes.load_rules(conn, rules)
    except psycopg.errors.UndefinedTable:
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE, "the schema is missing: run `zipscore db migrate`"
        ) from None
    except psycopg.OperationalError as exc:
        raise _database_unavailable(exc) from None
    try:
        cache_from_settings().publish_version(version)
    except redis.RedisError:
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"table version {version} is loaded, but Redis is unreachable to retire cached "
            "answers: run the load again once Redis is back",
        ) from None
    covered = sum(rule.last - rule.first + 1 for rule in rules)
    return {"loaded": True, "version": version, "rules": len(rules), "zipcodes": covered}


def remove_index_month(base_year: object, month: object) -> dict[str, Any]:
    """Delete one stored health index month and re-cache that base year's latest month."""
    settings = get_settings()
    # A pool of its own, closed on the way out (not the process pool a worker may share).
    pool = ConnectionPool(
        settings.database,
        min_size=1,
        max_size=1,
        timeout=settings.db_connect_timeout,
        kwargs={"autocommit": True},
        name="zipscore-admin",
        open=True,
    )
    try:
        return index.remove_month(
            PostgresHealthIndexStore(pool),
            index_cache_from_settings(settings),
            base_year,
            month,
            settings.index_base_years,
        )
    except psycopg.errors.UndefinedTable:
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE, "the schema is missing: run `zipscore db migrate`"
        ) from None
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise _database_unavailable(exc) from None
    except redis.RedisError as exc:
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE,
            f"Redis at {_where(settings.cache)} is unreachable ({type(exc).__name__}): "
            "nothing removed",
        ) from None
    finally:
        pool.close()


def doctor() -> dict[str, Any]:
    """Whether Postgres and Redis answer, with what to start when they do not.

    A Redis that answers but may evict queued messages, or is nearly full, is a problem
    too (`problems`: service, code, message; see worker/contract/redis_health.py).
    """
    settings = get_settings()
    services: dict[str, str] = {}
    try:
        with db.connect() as conn:
            conn.execute("SELECT 1")
        services["postgres"] = f"ok ({_where(settings.database)})"
    except psycopg.OperationalError:
        services["postgres"] = f"UNREACHABLE at {_where(settings.database)}"
    problems: list[dict[str, str]] = []
    for name, url in {"broker": settings.broker, "cache": settings.cache}.items():
        try:
            client = redis_client(url)
            client.ping()
            found = memory_problems(client)
        except redis.RedisError:
            services[name] = f"UNREACHABLE at {_where(url)}"
            continue
        services[name] = "; ".join(found) if found else f"ok ({_where(url)})"
        for line in found:
            code, _, message = line.partition(": ")
            problems.append({"service": name, "code": code, "message": message})
    ok = all(state.startswith("ok") for state in services.values())
    if any(state.startswith("UNREACHABLE") for state in services.values()):
        services["hint"] = START_HINT
    report: dict[str, Any] = {"ok": ok, "services": services}
    if problems:
        report["problems"] = problems
    return report
