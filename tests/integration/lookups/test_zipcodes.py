"""The risk table in the real Postgres: migrations, atomic loads, versions."""

from __future__ import annotations

import threading

import psycopg
import pytest

from worker.database import migrations
from worker.database import pool as db
from worker.lookups import zipcodes
from worker.lookups.risk_table import RiskTableError, parse_text


def test_migrations_are_recorded_and_idempotent(conn: psycopg.Connection) -> None:
    assert migrations.migrate(conn) == []
    versions = [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in migrations.discover()]


def test_the_schema_keeps_lookups_on_indexes(conn: psycopg.Connection) -> None:
    conn.execute("SET enable_seqscan = off")
    plan = "\n".join(
        row[0]
        for row in conn.execute("EXPLAIN SELECT risk_factor FROM zipcodes WHERE zipcode = 9000")
    )
    assert "zipcodes_pkey" in plan
    plan = "\n".join(
        row[0]
        for row in conn.execute("EXPLAIN SELECT zipcode FROM zipcodes WHERE risk_factor = 'A'")
    )
    assert "zipcodes_risk_factor_idx" in plan
    conn.execute("RESET enable_seqscan")


@pytest.mark.parametrize(
    "bad_row",
    ["INSERT INTO zipcodes VALUES (999, 'A')", "INSERT INTO zipcodes VALUES (1000, 'D')"],
)
def test_the_database_refuses_what_the_parser_refuses(
    conn: psycopg.Connection, bad_row: str
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
        conn.execute(bad_row)


def test_a_refused_table_changes_nothing(conn: psycopg.Connection) -> None:
    before = (zipcodes.table_version(conn), zipcodes.table_size(conn))
    with pytest.raises(RiskTableError):
        zipcodes.load_rules(conn, parse_text("1000,C\n1000 - 1002,A\n"))
    assert (zipcodes.table_version(conn), zipcodes.table_size(conn)) == before


def test_a_load_that_fails_midway_rolls_back(conn: psycopg.Connection) -> None:
    before = conn.execute(
        "SELECT count(*), (SELECT version FROM risk_table_meta) FROM zipcodes"
    ).fetchone()

    class Boom(Exception):
        pass

    def exploding() -> object:
        yield from parse_text("1000 - 1005,A\n")
        raise Boom

    with pytest.raises(Boom):
        zipcodes.load_rules(conn, exploding())  # type: ignore[arg-type]
    after = conn.execute(
        "SELECT count(*), (SELECT version FROM risk_table_meta) FROM zipcodes"
    ).fetchone()
    assert after == before


@pytest.mark.usefixtures("restore_table")
def test_readers_never_see_a_half_loaded_table(database: str) -> None:
    """While two tables alternate, every reader sees one whole table or the other."""
    big = parse_text("1000 - 9999,A\n")
    small = parse_text("1000 - 1999,B\n")
    stop = threading.Event()
    seen: set[tuple[int, str]] = set()

    def read() -> None:
        with db.connect() as reader:
            while not stop.is_set():
                row = reader.execute("SELECT count(*), min(risk_factor) FROM zipcodes").fetchone()
                assert row is not None
                seen.add((int(row[0]), str(row[1])))

    with db.connect() as writer:
        original = zipcodes.table_size(writer)
        thread = threading.Thread(target=read)
        thread.start()
        try:
            for _ in range(5):
                zipcodes.load_rules(writer, big)
                zipcodes.load_rules(writer, small)
        finally:
            stop.set()
            thread.join(10)
    assert seen <= {(9000, "A"), (1000, "B"), (original, "A")}
    assert len(seen) >= 2
