"""Where a batch lives in Redis: the key of everything a job leaves there, and its id.

    <prefix>:batch:table:v<N>          the risk table of version N (JSON), SET NX, TTL
    <prefix>:batch:<job>:input:<i>     chunk i's input rows (raw bytes), written by the producer
    <prefix>:batch:<job>:chunk:<i>     chunk i's counts line + output rows, SET (idempotent), TTL
    <prefix>:batch:<job>:done          list of chunk indexes as they complete (wake-ups only)
    <prefix>:batch:job:<job>           hash: the job's parameters and its progress, TTL
    <prefix>:batch:job:<job>:lease     which producer is running the job, short TTL
    <prefix>:batch:output:<sha256>     which job is writing an output path, short TTL

What is stored under these keys, and how, is `worker.contract.batch_store`'s.
"""

from __future__ import annotations

import hashlib
import re

# Job ids are chosen by the producer: 16 hex digits (uuid4), checked wherever they arrive,
# always against the whole text: `\A...\Z`, so neither `match` nor `fullmatch` lets a
# trailing newline through (which `$` would).
JOB_ID_PATTERN = r"[a-f0-9]{8,32}"
JOB_ID = re.compile(rf"\A{JOB_ID_PATTERN}\Z")


def is_job_id(text: object) -> bool:
    """Whether `text` is a job id, all of it."""
    return isinstance(text, str) and JOB_ID.fullmatch(text) is not None


class BatchKeys:
    """The batch keys under one deployment's prefix."""

    def __init__(self, prefix: str) -> None:
        self._prefix = f"{prefix}:batch"

    def table_key(self, version: int) -> str:
        return f"{self._prefix}:table:v{version}"

    def input_key(self, job: str, index: int) -> str:
        return f"{self._prefix}:{job}:input:{index}"

    def chunk_key(self, job: str, index: int) -> str:
        return f"{self._prefix}:{job}:chunk:{index}"

    def done_key(self, job: str) -> str:
        return f"{self._prefix}:{job}:done"

    def job_key(self, job: str) -> str:
        return f"{self._prefix}:job:{job}"

    def lease_key(self, job: str) -> str:
        return f"{self.job_key(job)}:lease"

    def output_key(self, path: str) -> str:
        """The lock of an output path (its real path, hashed: any length, any bytes)."""
        return f"{self._prefix}:output:{hashlib.sha256(path.encode()).hexdigest()}"
