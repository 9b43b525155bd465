"""Schema migrations: plain SQL files in `worker/database/migrations/`, applied in order, each once.

The applied versions are recorded in `schema_migrations`; a Postgres advisory lock makes
concurrent `zipscore db migrate` runs (several containers starting at once) safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_LOCK_KEY = 0x5A1B5C0E
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    path: Path


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migration files in version order; a misnamed or duplicated file is an error."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name not NNNN_name.sql: {path.name}")
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"two migrations with version {version}")
        found[version] = Migration(version, path)
    return [found[v] for v in sorted(found)]


def migrate(conn: psycopg.Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply every pending migration, each in its own transaction; returns the versions run."""
    applied_now: list[int] = []
    conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
    try:
        with conn.transaction():
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in discover(directory):
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.path.read_text(encoding="utf-8").encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES (%s)", (migration.version,)
                )
            applied_now.append(migration.version)
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now
