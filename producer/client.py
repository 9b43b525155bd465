"""The typed client that upstream services and the CLI use to ask zipscore questions.

    from producer.client import Client
    client = Client()
    client.lookup(9000)            # LookupResult(zipcode=9000, risk_factor='B', exists=True)
    client.by_risk_factor("A")     # RiskFactorListing(risk_factor='A', count=..., zipcodes=[...])
    client.index(2004)             # IndexAnswer(base_year=2004, index=135.61, ...)
    client.refresh_index()         # RefreshReport(months_stored=..., months_new=..., ...)
    client.score_file(Path("in.csv"), Path("out.csv"))   # BatchSummary(job_id=..., rows=...)

Input is validated before anything is sent; answers come from the Redis result cache when
warm, otherwise a task is sent by name to the `lookups` queue and awaited. Every failure is
a `ZipscoreError` with a contract code. Only Celery's client side and redis are imported:
no database driver is needed to submit work.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celery.exceptions
import kombu.exceptions
import redis

from producer import metrics
from producer.batch.results import BatchSummary, JobStatus
from producer.batch.runner import BatchRunner, ProgressFactory
from worker.contract import tracing
from worker.contract.answers import IndexAnswer, LookupResult, RefreshReport, RiskFactorListing
from worker.contract.batch_store import BatchStore, batch_store_from_settings
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.index_cache import (
    IndexCache,
    index_cache_from_settings,
    utcnow,
    with_staleness,
)
from worker.contract.messaging import sending_app
from worker.contract.redis_errors import is_out_of_memory
from worker.contract.result_cache import BY_RISK_FACTOR, LOOKUP, ResultCache, cache_from_settings
from worker.contract.settings import Settings, get_settings
from worker.contract.validation import parse_base_year, parse_risk_factor, parse_zipcode

logger = logging.getLogger(__name__)
_BACKEND_ERRORS = (
    kombu.exceptions.OperationalError,
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
)
OUT_OF_MEMORY = (
    "the broker is out of memory (maxmemory reached): Redis refuses new work until memory "
    "is freed or maxmemory raised; `zipscore doctor` shows its use"
)
_EXPLAINED_FAILURES = frozenset({"SourceUnavailable", "SourceRefused", "DocumentRefused"})


@contextlib.contextmanager
def _redis_faults() -> Iterator[None]:
    """Redis going away mid-batch is BACKEND_UNAVAILABLE (the job stays resumable)."""
    try:
        yield
    except redis.RedisError as exc:
        if is_out_of_memory(exc):
            raise ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, OUT_OF_MEMORY) from None
        raise ZipscoreError(
            ErrorCode.BACKEND_UNAVAILABLE, f"Redis is unreachable ({type(exc).__name__})"
        ) from None


class Client:
    """Sends zipscore tasks by name and waits for their answers, reading the cache first."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        cache: ResultCache | None = None,
        index_cache: IndexCache | None = None,
        timeout: float | None = None,
        batch_store: BatchStore | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.timeout = timeout if timeout is not None else self.settings.lookup_timeout
        self._app = sending_app(self.settings)
        self._cache = cache or cache_from_settings(self.settings)
        self._index_cache = index_cache or index_cache_from_settings(self.settings)
        self._batch_store = batch_store
        tracing.setup("zipscore-producer")  # once per process, when OTEL_* asks for traces

    @property
    def app(self) -> Any:
        """The Celery app, used to send tasks by name (never to import worker code)."""
        return self._app

    def score_file(
        self,
        source: Path,
        output: Path,
        *,
        zipcode_column: str = "zipcode",
        chunk_size: int | None = None,
        progress: ProgressFactory | None = None,
    ) -> BatchSummary:
        """Score every row of the CSV `source` into `output` through the `batch` queue.

        Raises:
            ZipscoreError: BAD_INPUT_FILE (before any job is created) when the file cannot
                be scored; TIMEOUT or BACKEND_UNAVAILABLE when the queue or workers fail.
        """
        extra = {"progress": progress} if progress is not None else {}
        with _redis_faults():
            return self._batch_runner().start(
                source, output, zipcode_column=zipcode_column, chunk_size=chunk_size, **extra
            )

    def resume_batch(self, job_id: str, *, progress: ProgressFactory | None = None) -> BatchSummary:
        """Finish an interrupted batch job without scoring its finished chunks again."""
        extra = {"progress": progress} if progress is not None else {}
        with _redis_faults():
            return self._batch_runner().resume(job_id, **extra)

    def batch_status(self, job_id: str) -> JobStatus:
        """A batch job's recorded progress."""
        with _redis_faults():
            return self._batch_runner().status(job_id)

    def _batch_runner(self) -> BatchRunner:
        if self._batch_store is None:
            self._batch_store = batch_store_from_settings()
        return BatchRunner(self, self._batch_store)

    def lookup(self, zipcode: int | str, *, timeout: float | None = None) -> LookupResult:
        """The risk factor of one zipcode (`exists=False` for a valid but unknown one).

        `timeout` (default ZIPSCORE_LOOKUP_TIMEOUT) bounds the wait for a worker, as it
        does for every question below.
        """
        with metrics.asked("lookup") as asked, tracing.span("zipscore.lookup"):
            number = parse_zipcode(zipcode)
            if (cached := self._cached(LOOKUP, number)) is not None:
                asked.source = "cache"
                return asked.answered(LookupResult.model_validate(cached))
            return asked.answered(self.lookup_uncached(number, timeout=timeout))

    def lookup_uncached(self, zipcode: int, *, timeout: float | None = None) -> LookupResult:
        """`lookup` of a zipcode already parsed, asked of a worker without a cache read."""
        return LookupResult.model_validate(self.call("zipcodes.lookup", zipcode, timeout=timeout))

    def by_risk_factor(
        self, risk_factor: str, *, timeout: float | None = None
    ) -> RiskFactorListing:
        """Every zipcode carrying `risk_factor`, ascending."""
        with metrics.asked("risk_factor") as asked, tracing.span("zipscore.by_risk_factor"):
            factor = parse_risk_factor(risk_factor)
            if (cached := self._cached(BY_RISK_FACTOR, factor)) is not None:
                asked.source = "cache"
                return asked.answered(RiskFactorListing.model_validate(cached))
            return asked.answered(self.by_risk_factor_uncached(factor, timeout=timeout))

    def by_risk_factor_uncached(
        self, risk_factor: str, *, timeout: float | None = None
    ) -> RiskFactorListing:
        """`by_risk_factor` of a factor already parsed, without a cache read."""
        answer = self.call("zipcodes.by_risk_factor", risk_factor, timeout=timeout)
        return RiskFactorListing.model_validate(answer)

    def index(
        self, base_year: int | str | None = None, *, timeout: float | None = None
    ) -> IndexAnswer:
        """The latest health index for a base year (default ZIPSCORE_INDEX_DEFAULT_BASE_YEAR).

        Raises:
            ZipscoreError: WRONG_YEAR (refused before sending), INDEX_UNAVAILABLE when no
                refresh has succeeded yet, TIMEOUT or BACKEND_UNAVAILABLE.
        """
        with metrics.asked("index") as asked, tracing.span("zipscore.index"):
            return asked.answered(self._index(base_year, timeout, asked))

    def _index(
        self, base_year: int | str | None, timeout: float | None, asked: metrics.Asked
    ) -> IndexAnswer:
        supported = self.settings.index_base_years
        year = parse_base_year(
            self.settings.index_default_base_year if base_year is None else base_year, supported
        )
        try:
            cached = self._index_cache.get(year)
        except redis.RedisError:
            cached = None  # the cache is an optimisation: the queue still answers
        if cached is not None:
            asked.source = "cache"
            answer = with_staleness(cached, self.settings.index_stale_after_seconds, utcnow())
            return IndexAnswer.model_validate(answer)
        return self.index_uncached(year, timeout=timeout)

    def index_uncached(self, base_year: int, *, timeout: float | None = None) -> IndexAnswer:
        """`index` of a base year already parsed, without a cache read."""
        return IndexAnswer.model_validate(self.call("index.latest", base_year, timeout=timeout))

    def refresh_index(self, timeout: float | None = None) -> RefreshReport:
        """Enqueue a refresh from Statbel now and wait for its report.

        The worker tries Statbel once (`retry=False`): someone is waiting, so a fault is
        answered at once with its cause instead of retried for minutes behind their back
        (the scheduled refresh retries).

        Raises:
            ZipscoreError: INDEX_UNAVAILABLE when the refresh failed, with the cause (the
                previous values stay in service), BACKEND_UNAVAILABLE when the worker's
                Postgres or Redis is down, TIMEOUT when no worker answered in time.
        """
        wait = timeout if timeout is not None else self.settings.index_refresh_timeout
        # No expiry: a refresh nobody waits for any more is still worth running, once.
        report = self.call(
            "index.refresh",
            timeout=wait,
            failure_code=ErrorCode.INDEX_UNAVAILABLE,
            expires=False,
            kwargs={"retry": False},
        )
        return RefreshReport.model_validate(report)

    def _cached(self, kind: str, key: object) -> dict[str, Any] | None:
        try:
            cached = self._cache.get(kind, key)
        except redis.RedisError:
            return None  # the cache is an optimisation: the queue still answers
        if cached is not None:
            logger.info("cache hit %s %s: no task sent", kind, key)
        return cached

    def call(
        self,
        task: str,
        *args: Any,
        timeout: float | None = None,
        failure_code: ErrorCode = ErrorCode.BACKEND_UNAVAILABLE,
        expires: bool = True,
        kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Send `task` by name, wait for its JSON answer, and raise contract errors.

        `failure_code` is the code of a task that failed after its retries. With `expires`,
        the task expires when the wait ends: a worker that takes it later (none was there
        in time) drops it unrun instead of answering nobody.
        """
        wait = timeout if timeout is not None else self.timeout
        try:
            result = self._app.send_task(
                task, args=args, kwargs=kwargs, expires=wait if expires else None
            )
            logger.info("sent %s task_id=%s", task, result.id)
        except Exception as exc:  # kombu, redis or the result backend giving up on connecting
            if is_out_of_memory(exc):  # kombu wraps it in OperationalError
                raise ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, OUT_OF_MEMORY) from None
            raise ZipscoreError(
                ErrorCode.BACKEND_UNAVAILABLE, f"the queue is unreachable ({type(exc).__name__})"
            ) from None
        try:
            payload = result.get(timeout=wait, propagate=True)
        except celery.exceptions.TimeoutError:
            raise ZipscoreError(
                ErrorCode.TIMEOUT, f"no answer from a worker within {wait:g} s"
            ) from None
        except celery.exceptions.TaskRevokedError:
            # The task expired (its expiry is this wait's end): a worker took it, or its
            # retry, only after the wait was over, and dropped it unrun. That is a timeout,
            # seen a moment before the wait itself ends.
            raise ZipscoreError(
                ErrorCode.TIMEOUT, f"no answer from a worker within {wait:g} s"
            ) from None
        except _BACKEND_ERRORS as exc:
            raise ZipscoreError(
                ErrorCode.BACKEND_UNAVAILABLE,
                f"the result store is unreachable ({type(exc).__name__})",
            ) from None
        except Exception as exc:  # the task itself failed after its retries
            raise ZipscoreError(failure_code, _failure(exc)) from None
        if not isinstance(payload, dict):
            raise ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, "the worker answered nonsense")
        if "error" in payload:
            raise ZipscoreError.from_json(payload)
        return payload


def _failure(exc: Exception) -> str:
    """One line about a failed task: its type, and its message when it is one of ours."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    # Only the source's and the document's refusals are echoed: they are written by
    # zipscore and carry no secrets; other messages may (a DSN, a URL with a password).
    detail = f": {text}" if text and type(exc).__name__ in _EXPLAINED_FAILURES else ""
    return f"the worker failed: {type(exc).__name__}{detail}"
