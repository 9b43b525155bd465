"""The batch store's leases and job updates, and how its client sends chunk-sized values
(worker/contract/batch_store.py)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from worker.contract import batch_store as batch_store_module
from worker.contract.batch_store import BatchStore
from worker.contract.result_cache import unjoined_packer


def test_leases_are_renewed_and_released_only_by_their_holder(batch_store: BatchStore) -> None:
    job = "0123456789abcdef"
    batch_store.create_job(job, {"rows": 0})
    assert batch_store.take_lease(job, "a", 10)
    assert not batch_store.take_lease(job, "b", 10)
    assert not batch_store.renew_lease(job, "b", 100)
    assert not batch_store.release_lease(job, "b")
    assert batch_store.lease_holder(job) == "a"
    assert batch_store.redis.pttl(batch_store.lease_key(job)) <= 10_000
    assert batch_store.renew_lease(job, "a", 100)
    assert batch_store.redis.pttl(batch_store.lease_key(job)) > 10_000
    assert not batch_store.update_job(job, {"rows": 1}, owner="b")
    assert batch_store.update_job(job, {"rows": 1}, owner="a")
    assert batch_store.release_lease(job, "a")
    assert batch_store.lease_holder(job) is None
    assert batch_store.take_lease(job, "b", 10)


def test_a_lease_taken_over_between_check_and_renewal_is_not_extended(
    batch_store: BatchStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder's check reads its own token, then the lease expires and another takes it."""
    job = "0123456789abcdef"
    key = batch_store.lease_key(job)
    assert batch_store.take_lease(job, "a", 10)
    holds = batch_store_module._holds
    stale_reads: list[bool] = []

    def check_then_lose_it(raw: Any, owner: str) -> bool:
        answer = holds(raw, owner)
        if not stale_reads:
            stale_reads.append(answer)
            batch_store.redis.set(key, "b", px=5_000)  # a's lease ran out; b took it
        return answer

    monkeypatch.setattr(batch_store_module, "_holds", check_then_lose_it)
    assert not batch_store.renew_lease(job, "a", 100)
    assert stale_reads == [True]  # the first check was stale; the write did not happen
    assert batch_store.lease_holder(job) == "b"
    assert batch_store.redis.pttl(key) <= 5_000


def test_updates_never_create_a_job(batch_store: BatchStore) -> None:
    assert not batch_store.update_job("0123456789abcdef", {"state": "interrupted"})
    assert batch_store.get_job("0123456789abcdef") is None
    batch_store.create_job("0123456789abcdef", {"state": "running"})
    assert batch_store.update_job("0123456789abcdef", {"state": "interrupted"})
    assert batch_store.get_job("0123456789abcdef") == {"state": "interrupted"}


def test_the_packer_sends_a_big_value_itself_not_a_copy() -> None:
    value = os.urandom(3 * 1024 * 1024)
    pieces = unjoined_packer().pack("SET", "key", value)
    assert any(piece is value for piece in pieces)
    assert b"".join(pieces) == b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$%d\r\n%s\r\n" % (
        len(value),
        value,
    )
