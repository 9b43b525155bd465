"""The batch store against the real Redis: chunk-sized values, and job updates (a script).

The store's client sends a big value as a piece of its own (`unjoined_packer`), where
redis-py's default with hiredis copies it into one buffer with its command.
"""

from __future__ import annotations

import os

import redis

from worker.contract.batch_output import ScoredBytes
from worker.contract.batch_store import batch_store_from_settings


def test_chunk_inputs_and_outputs_of_megabytes_come_back_byte_for_byte(
    redis_keys: redis.Redis,
) -> None:
    store = batch_store_from_settings()
    job = "0123456789abcdef"
    rows = os.urandom(3 * 1024 * 1024) + b"\r\n"  # any bytes: nothing is encoded on the way
    store.put_input(job, 0, rows)
    store.put_chunk(job, 0, ScoredBytes(rows, 7, 5, 1, 1))
    assert store.get_input(job, 0) == rows
    stored = store.get_chunk(job, 0)
    assert stored is not None
    assert (stored.rows, stored.ok, stored.unknown, stored.invalid) == (7, 5, 1, 1)
    assert stored.data == rows
    assert redis_keys.ttl(store.input_key(job, 0)) > 0


def test_a_job_update_is_one_script_that_checks_the_job_and_its_lease(
    redis_keys: redis.Redis,
) -> None:
    store = batch_store_from_settings()
    job = "fedcba9876543210"
    assert not store.update_job(job, {"state": "running"})  # never creates a job
    assert not redis_keys.exists(store.job_key(job))
    store.create_job(job, {"state": "running", "rows": 0})
    assert store.take_lease(job, "producer-a", 10)
    store.put_input(job, 3, b"rows\n")
    store.put_chunk(job, 3, ScoredBytes(b"rows,A,ok,\n", 1, 1, 0, 0))
    assert not store.update_job(job, {"rows": 9}, owner="producer-b", written_chunk=3)
    assert store.get_job(job) == {"state": "running", "rows": "0"}
    assert store.has_chunk(job, 3)
    assert store.update_job(job, {"rows": 1, "chunks_done": 4}, owner="producer-a", written_chunk=3)
    assert store.get_job(job) == {"state": "running", "rows": "1", "chunks_done": "4"}
    assert not store.has_chunk(job, 3)
    assert store.get_input(job, 3) is None
    assert store.update_job(job, {})  # nothing to change is still an update of a live job
    assert 0 < redis_keys.ttl(store.job_key(job)) <= store.ttl
