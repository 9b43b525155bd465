"""Lookups through the real queue: an embedded worker, the real Redis and Postgres."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from producer.client import Client
from tests.support.table_activity import activity
from worker.contract.answers import LookupResult
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.result_cache import ResultCache
from worker.lookups import zipcodes
from worker.lookups.current_table import RECHECK_SECONDS
from worker.lookups.risk_table import parse_text

pytestmark = pytest.mark.usefixtures("celery_worker")


@pytest.fixture
def client(real_cache: ResultCache) -> Client:
    return Client(cache=real_cache, timeout=15)


def test_lookup_through_the_queue(client: Client) -> None:
    assert client.lookup(9000) == LookupResult(zipcode=9000, risk_factor="B", exists=True)
    assert client.lookup(1501) == LookupResult(zipcode=1501, risk_factor=None, exists=False)


@pytest.mark.parametrize(
    ("zipcode", "factor"),
    [(1000, "C"), (1310, "C"), (1311, None), (1315, "B"), (9170, "A"), (9240, "A"), (9999, "B")],
)
def test_boundaries_of_the_sample_table(client: Client, zipcode: int, factor: str | None) -> None:
    assert client.lookup(zipcode).risk_factor == factor


def test_a_second_lookup_is_answered_from_the_cache(
    client: Client, real_cache: ResultCache
) -> None:
    first = client.lookup(4500)
    assert real_cache.get("lookup", 4500) == first.model_dump()


def test_listing_by_risk_factor(client: Client) -> None:
    listing = client.by_risk_factor("A")
    assert listing.zipcodes[:3] == [1320, 1350, 1351]
    assert listing.count == len(listing.zipcodes) == 1 + 2 + 400 + 71
    assert listing.zipcodes == sorted(listing.zipcodes)


def test_a_raw_message_with_an_injection_reaches_no_query(
    client: Client, conn: psycopg.Connection
) -> None:
    before = activity(conn)
    with pytest.raises(ZipscoreError) as caught:
        client.call("zipcodes.by_risk_factor", "A' OR '1'='1")
    assert caught.value.code is ErrorCode.RISK_FACTOR_NOT_VALID
    with pytest.raises(ZipscoreError) as caught:
        client.call("zipcodes.lookup", "1000; DROP TABLE zipcodes")
    assert caught.value.code is ErrorCode.ZIPCODE_NOT_VALID
    # Every other parameter: tests/integration/database/test_injection.py.
    assert activity(conn).since(before) == {}
    assert zipcodes.table_size(conn) > 0


@pytest.mark.usefixtures("restore_table")
def test_a_reload_invalidates_every_cached_answer(
    client: Client, conn: psycopg.Connection, real_cache: ResultCache
) -> None:
    assert client.lookup(9000).risk_factor == "B"
    assert client.by_risk_factor("C").count > 0
    version = zipcodes.load_rules(conn, parse_text("9000,C\n"))
    real_cache.publish_version(version)
    assert client.lookup(9000).risk_factor == "C"
    assert client.lookup(1000) == LookupResult(zipcode=1000, risk_factor=None, exists=False)
    assert client.by_risk_factor("C").zipcodes == [9000]


@pytest.mark.usefixtures("restore_table")
def test_a_load_whose_publish_never_happened_is_answered_within_the_recheck(
    client: Client, conn: psycopg.Connection
) -> None:
    """The worker's copy of the table checks Postgres's version at most every
    RECHECK_SECONDS: a load that committed but never reached Redis (Redis was down for its
    publish) is answered from then on, through the queue, without any publish."""
    assert client.call("zipcodes.lookup", 9000)["risk_factor"] == "B"  # the copy is warm
    zipcodes.load_rules(conn, parse_text("9000,C\n"))  # committed, not published
    time.sleep(RECHECK_SECONDS + 0.1)
    assert client.call("zipcodes.lookup", 9000)["risk_factor"] == "C"


def test_concurrent_lookups_share_the_pool(client: Client) -> None:
    errors: list[BaseException] = []
    answers: list[str | None] = []

    def ask(zipcode: int) -> None:
        try:
            answers.append(Client(timeout=15).lookup(zipcode).risk_factor)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask, args=(z,)) for z in range(6000, 6016)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert answers == ["C"] * 16
