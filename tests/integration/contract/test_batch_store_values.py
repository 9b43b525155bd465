"""Chunk-sized values through the batch store's own client, against the real Redis.

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
