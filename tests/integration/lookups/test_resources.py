"""Many lookups leak nothing: no file descriptors, no database connections, flat memory."""

from __future__ import annotations

import psycopg
import pytest

from producer.client import Client
from worker.contract.result_cache import ResultCache

pytestmark = pytest.mark.usefixtures("celery_worker")

LOOKUPS = 400


def backend_connections(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND pid <> pg_backend_pid()"
    ).fetchone()
    return int(row[0]) if row else 0


@pytest.fixture
def warm_client(real_cache: ResultCache) -> Client:
    """A client whose connections (broker, results, cache, the worker's pool) are open."""
    client = Client(cache=real_cache, timeout=15)
    for zipcode in range(5000, 5020):
        client.call("zipcodes.lookup", zipcode)
        client.lookup(zipcode)
    return client


@pytest.mark.budget(fds=0, rss_mb=40)
def test_many_lookups_leak_no_connections(warm_client: Client, conn: psycopg.Connection) -> None:
    before = backend_connections(conn)
    for index in range(LOOKUPS):
        zipcode = 5000 + index % 40
        warm_client.call("zipcodes.lookup", zipcode)  # through the queue, every time
        warm_client.lookup(zipcode)  # from the cache after the first
    assert backend_connections(conn) <= before
