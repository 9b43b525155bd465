"""Operator commands behind `zipscore db ...` and `zipscore doctor`.

These talk to Postgres directly (they need the worker's database driver, imported here
lazily); submitting work never goes through this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from worker.errors import ErrorCode, ZipscoreError
from worker.settings import get_settings

START_HINT = (
    "start them (Debian: `pg_ctlcluster 15 main start`; `redis-server --daemonize yes`) "
    "or run `docker compose up -d postgres redis`"
)


def _where(url: str) -> str:
    """host:port of a URL, never its credentials."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or ''}".rstrip(":")


def _database_unavailable(exc: Exception) -> ZipscoreError:
    where = _where(get_settings().database)
    return ZipscoreError(
        ErrorCode.BACKEND_UNAVAILABLE,
        f"Postgres at {where} is unreachable ({type(exc).__name__}); {START_HINT}",
    )


def migrate() -> list[int]:
    import psycopg

    from worker import db, migrations

    try:
        with db.connect() as conn:
            return migrations.migrate(conn)
    except psycopg.OperationalError as exc:
        raise _database_unavailable(exc) from None


def load_zipcodes(path: Path, *, if_empty: bool = False) -> dict[str, Any]:
    """Parse the table at `path` (all or nothing), load it, and retire cached answers."""
    import psycopg

    from worker import db, zipcodes
    from worker.cache import cache_from_settings
    from worker.risk_table import parse_text

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ZipscoreError(
            ErrorCode.BAD_INPUT_FILE, f"cannot read {path}: {type(exc).__name__}"
        ) from None
    rules = parse_text(text)
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


def doctor() -> dict[str, Any]:
    """Whether Postgres and Redis answer, with what to start when they do not.

    A Redis that answers but may evict queued messages, or is nearly full, is a problem
    too (`problems`: service, code, message; see worker/redis_health.py).
    """
    import psycopg

    from worker import db
    from worker.cache import redis_client
    from worker.redis_health import memory_problems

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
