"""What a batch keeps in Redis: pinned tables, chunk inputs and outputs, completion
notices, the job's record, its lease and the lock of its output (keys: `batch_keys`).

Shared by the worker (writes chunk outputs) and the producer (reads them, records progress);
it imports redis only, so producers can use it without the worker's dependencies.

Task messages stay small (a claim check): the rows travel as raw bytes under their input key,
never JSON-escaped and base64-encoded inside a message. A chunk's output is a pure function
of (input bytes, pinned table version), so a redelivered or resubmitted chunk writes the
identical value: SET is safe to repeat.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from worker.contract.batch_keys import BatchKeys
from worker.contract.batch_output import ChunkResult, ScoredBytes

# KEYS: the job's hash, its lease[, the written chunk's output and input]; ARGV: the owner
# ("" for any), the TTL, then field, value, ... Returns 1 if written, 0 if not.
UPDATE_JOB = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if ARGV[1] ~= '' and redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if #ARGV > 2 then redis.call('HSET', KEYS[1], unpack(ARGV, 3)) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if #KEYS > 2 then redis.call('DEL', KEYS[3], KEYS[4]) end
return 1
"""


@dataclass(frozen=True)
class StoredChunk:
    """A scored chunk read back from Redis: its counts and its output bytes (a view of the
    value read, which is megabytes: never copied)."""

    rows: int
    ok: int
    unknown: int
    invalid: int
    data: memoryview


class BatchStore(BatchKeys):
    """Batch keys under one prefix, with one TTL for everything a job leaves behind."""

    def __init__(self, client: redis.Redis, prefix: str, ttl_seconds: int) -> None:
        super().__init__(prefix)
        self.redis = client
        self.ttl = ttl_seconds
        self._update_job = client.register_script(UPDATE_JOB)

    # -- pinned tables -------------------------------------------------------------------

    def put_table(self, version: int, factors: Mapping[int, str]) -> None:
        """Store table `version` unless it is stored already (versions never change)."""
        body = json.dumps({str(zipcode): factor for zipcode, factor in factors.items()})
        key = self.table_key(version)
        if not self.redis.set(key, body, nx=True, ex=self.ttl):
            self.redis.expire(key, self.ttl)

    def get_table(self, version: int) -> dict[int, str] | None:
        raw = self.redis.get(self.table_key(version))
        if raw is None:
            return None
        return {int(zipcode): str(factor) for zipcode, factor in json.loads(raw).items()}

    def has_table(self, version: int) -> bool:
        return bool(self.redis.expire(self.table_key(version), self.ttl))

    # -- chunk inputs and outputs --------------------------------------------------------

    def put_input(self, job: str, index: int, data: bytes) -> None:
        self.redis.set(self.input_key(job, index), data, ex=self.ttl)

    def get_input(self, job: str, index: int) -> bytes | None:
        raw = self.redis.get(self.input_key(job, index))
        return None if raw is None else _bytes(raw)

    def put_chunk(self, job: str, index: int, result: ChunkResult | ScoredBytes) -> None:
        """Store chunk `index`'s output and announce it; safe to repeat."""
        counts = f"{result.rows} {result.ok} {result.unknown} {result.invalid}\n"
        body = result.data if isinstance(result, ScoredBytes) else result.text.encode()
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(self.chunk_key(job, index), counts.encode() + body, ex=self.ttl)
        pipe.rpush(self.done_key(job), index)
        pipe.expire(self.done_key(job), self.ttl)
        pipe.execute()

    def get_chunk(self, job: str, index: int) -> StoredChunk | None:
        raw = self.redis.get(self.chunk_key(job, index))
        if raw is None:
            return None
        body = _bytes(raw)
        counted = body.index(b"\n")
        rows, ok, unknown, invalid = (int(n) for n in body[:counted].split())
        return StoredChunk(rows, ok, unknown, invalid, memoryview(body)[counted + 1 :])

    def has_chunk(self, job: str, index: int) -> bool:
        return bool(self.redis.exists(self.chunk_key(job, index)))

    def wait_for_notice(self, job: str, timeout: float) -> list[int]:
        """Chunk indexes announced since the last call, waiting up to `timeout` for one."""
        key = self.done_key(job)
        first = self.redis.blpop([key], timeout=timeout)
        if first is None:
            return []
        pipe = self.redis.pipeline(transaction=True)
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        rest: list[bytes] = pipe.execute()[0]
        return [int(first[1]), *(int(item) for item in rest)]

    # -- the job -------------------------------------------------------------------------

    def create_job(self, job: str, fields: Mapping[str, Any]) -> None:
        pipe = self.redis.pipeline()
        pipe.hset(self.job_key(job), mapping={k: _text(v) for k, v in fields.items()})
        pipe.expire(self.job_key(job), self.ttl)
        pipe.execute()

    def get_job(self, job: str) -> dict[str, str] | None:
        raw = self.redis.hgetall(self.job_key(job))
        if not raw:
            return None
        return {_bytes(k).decode(): _bytes(v).decode() for k, v in raw.items()}

    def update_job(
        self,
        job: str,
        fields: Mapping[str, Any],
        *,
        written_chunk: int | None = None,
        owner: str | None = None,
    ) -> bool:
        """Record progress; with `written_chunk`, that chunk's input and output keys go too.

        Nothing is written unless the job's hash exists (a job that expired is never
        recreated with only the fields of one update), nor, with `owner`, unless `owner` still
        holds the job's lease: checked and written by one script (`UPDATE_JOB`), which Redis
        runs whole, in one round trip, so a producer that lost its lease never writes the
        job's state. False when nothing was written.

        The hash is updated before the chunk's keys are deleted, in the same script.
        """
        keys = [self.job_key(job), self.lease_key(job)]
        if written_chunk is not None:
            keys += [self.chunk_key(job, written_chunk), self.input_key(job, written_chunk)]
        pairs = [item for k, v in fields.items() for item in (k, _text(v))]
        written = self._update_job(keys=keys, args=[owner or "", self.ttl, *pairs])
        return bool(written)

    def chunks_written(self, job: str) -> int | None:
        """How many chunks the producer has written (None for an unknown job)."""
        raw = self.redis.hget(self.job_key(job), "chunks_done")
        return int(raw) if raw is not None else None

    def take_lease(self, job: str, owner: str, seconds: float) -> bool:
        """Hold the job for `owner` (or renew its hold); False when someone else holds it."""
        ms = max(1, int(seconds * 1000))
        if self.redis.set(self.lease_key(job), owner, nx=True, px=ms):
            return True
        return self.renew_lease(job, owner, seconds)

    def renew_lease(self, job: str, owner: str, seconds: float) -> bool:
        """Extend `owner`'s hold on the job; False (and nothing changed) if it is not `owner`'s.

        Checked and extended in one transaction: a lease that expired and was taken by
        another producer between the check and the change is never extended.
        """
        key = self.lease_key(job)
        ms = max(1, int(seconds * 1000))

        def extend(pipe: Any) -> bool:
            if not _holds(pipe.get(key), owner):
                return False
            pipe.multi()
            pipe.pexpire(key, ms)
            return True

        return self._transaction(extend, key)

    def release_lease(self, job: str, owner: str) -> bool:
        """Free the job if `owner` still holds it (checked and deleted in one transaction)."""
        key = self.lease_key(job)

        def free(pipe: Any) -> bool:
            if not _holds(pipe.get(key), owner):
                return False
            pipe.multi()
            pipe.delete(key)
            return True

        return self._transaction(free, key)

    def claim_output(self, path: str, job: str, seconds: float) -> str | None:
        """Lock output `path` for `job` (or renew its lock): None, or the job holding it.

        Keyed by the path, held by the job (not by a producer): a job resumed by another
        producer takes its own lock back, a second job writing the same path is refused.
        Renewed with the job's lease and let go with it; a killed producer's lock expires
        as its lease does.
        """
        key = self.output_key(path)
        ms = max(1, int(seconds * 1000))

        def claim(pipe: Any) -> str | None:
            raw = pipe.get(key)
            holder = None if raw is None else _bytes(raw).decode()
            if holder not in (None, job):
                return holder
            pipe.multi()
            pipe.set(key, job, px=ms)
            return None

        outcome: Any = self.redis.transaction(
            claim,  # type: ignore[arg-type]  # redis-py types it as returning None
            key,
            value_from_callable=True,
        )
        return None if outcome is None else str(outcome)

    def release_output(self, path: str, job: str) -> bool:
        """Unlock output `path` if `job` holds it."""
        key = self.output_key(path)

        def free(pipe: Any) -> bool:
            if not _holds(pipe.get(key), job):
                return False
            pipe.multi()
            pipe.delete(key)
            return True

        return self._transaction(free, key)

    def lease_holder(self, job: str) -> str | None:
        """Who holds the job's lease, if anyone."""
        raw = self.redis.get(self.lease_key(job))
        return None if raw is None else _bytes(raw).decode()

    def has_lease(self, job: str) -> bool:
        """Whether any producer holds the job's lease (a running job without one was stopped)."""
        return bool(self.redis.exists(self.lease_key(job)))

    def drop_notices(self, job: str) -> None:
        """Forget the job's completion notices (its last chunk is written)."""
        self.redis.delete(self.done_key(job))

    def _transaction(self, change: Callable[[Any], bool], *watched: str) -> bool:
        """Run `change` under WATCH of `watched` keys, retried if one changed before EXEC.

        `change` reads (immediate mode), decides, then queues its writes after
        `pipe.multi()`; what it returns is the answer.
        """
        outcome: Any = self.redis.transaction(
            change,  # type: ignore[arg-type]  # redis-py types it as returning None
            *watched,
            value_from_callable=True,
        )
        return bool(outcome)


def _holds(raw: bytes | str | None, owner: str) -> bool:
    return raw is not None and _bytes(raw).decode() == owner


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def batch_store_from_settings() -> BatchStore:
    """The store on the cache Redis, under this deployment's prefix."""
    from worker.contract.result_cache import redis_client
    from worker.contract.settings import get_settings

    settings = get_settings()
    return BatchStore(
        redis_client(settings.cache, big_values=True),
        settings.redis_prefix,
        settings.batch_ttl_seconds,
    )
