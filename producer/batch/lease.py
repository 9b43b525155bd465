"""A batch job's lease: renewed from a thread for the whole run, and guarding every write of
the job's state (a producer that lost it writes nothing more)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from producer.batch.errors import record_lost
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError

logger = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews the job's lease from a thread every third of its TTL, whatever the job is doing.

    Long steps (checking the whole input again, pinning the table, which may wait up to the
    chunk deadline) never outlast the lease. `held()` is False once a renewal was refused
    (someone else holds the job) or no renewal succeeded within the TTL (Redis unreachable,
    or this process was paused): the job must stop, and write nothing more.
    """

    def __init__(self, store: BatchStore, job: str, owner: str, seconds: float) -> None:
        self.store = store
        self.job = job
        self.owner = owner
        self.seconds = seconds
        self.output: str | None = None  # the output path this job has locked, once it has
        self.renewed_at = time.monotonic()  # the lease was just taken
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._renew_until_stopped, name=f"lease-{job}", daemon=True
        )

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                renewed = self.store.renew_lease(self.job, self.owner, self.seconds)
                if renewed and self.output is not None:
                    holder = self.store.claim_output(self.output, self.job, self.seconds)
                    renewed = holder is None
            except Exception as exc:  # Redis away for now: held() runs out by itself
                logger.warning("job %s: lease not renewed (%s)", self.job, type(exc).__name__)
                continue
            if not renewed:
                self.lost.set()
                return
            self.renewed_at = time.monotonic()

    def held(self) -> bool:
        """Whether the lease is still this producer's, as far as this process can tell."""
        return not self.lost.is_set() and time.monotonic() - self.renewed_at < self.seconds

    def check(self) -> None:
        """Raise TIMEOUT unless the lease is still held (BACKEND_UNAVAILABLE if the job's
        record is gone with it: nothing is left to resume)."""
        if not self.held():
            if self.lost.is_set() and self.store.get_job(self.job) is None:
                raise record_lost(self.job)
            raise ZipscoreError(
                ErrorCode.TIMEOUT, f"job {self.job} was taken by another producer (lease lost)"
            )

    def update(self, fields: dict[str, Any], *, written_chunk: int | None = None) -> None:
        """Write the job's state if this producer still holds its lease; else stop."""
        self.check()
        if self.store.update_job(self.job, fields, written_chunk=written_chunk, owner=self.owner):
            return
        if self.store.get_job(self.job) is None:
            raise record_lost(self.job)
        self.lost.set()
        self.check()
