"""The producer side's Prometheus series: questions as callers see them, and batch jobs.

    with metrics.asked("lookup") as asked:        # around one question of the client
        asked.source = "cache"                    # when the cache answered
        return asked.answered(result)             # outcome from the answer

Series (recorded only with ZIPSCORE_METRICS=true; the gateway serves them on /metrics):

- `zipscore_lookups_total{question, outcome, source}`: questions (`lookup`, `risk_factor`,
  `index`) by outcome (`answered`, `unknown` for a valid zipcode not in the table,
  `refused` for refused input, `error` for a timeout or an unavailable backend) and by
  source (`cache`, `worker`; `none` for refused input, asked of no one);
- `zipscore_lookup_duration_seconds{question, source}`: the latency the caller saw;
- `zipscore_batch_chunks_resent_total`: batch chunks sent again (deadline or failure);
- `zipscore_batch_rows_total`, `zipscore_batch_jobs_total` and
  `zipscore_batch_rows_per_second` (the last finished job's) of this producer's jobs.
"""

from __future__ import annotations

import functools
import time
from types import TracebackType
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram

from worker.contract.errors import ZipscoreError
from worker.contract.settings import get_settings

T = TypeVar("T")
# From a cache hit on the loop (~0.2 ms) to a worker answering at the lookup timeout.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

LOOKUPS = Counter(
    "zipscore_lookups", "Questions asked by producers", ["question", "outcome", "source"]
)
LATENCY = Histogram(
    "zipscore_lookup_duration_seconds",
    "Seconds a question took, as its producer saw it",
    ["question", "source"],
    buckets=LATENCY_BUCKETS,
)
CHUNKS_RESENT = Counter("zipscore_batch_chunks_resent", "Batch chunks sent to workers again")
BATCH_ROWS = Counter("zipscore_batch_rows", "Rows of finished batch jobs", ["outcome"])
BATCH_JOBS = Counter("zipscore_batch_jobs", "Batch jobs finished by this producer")
ROWS_PER_SECOND = Gauge("zipscore_batch_rows_per_second", "Rows a second of the last finished job")

_switch: dict[str, bool] = {}


def recording() -> bool:
    """ZIPSCORE_METRICS, read once per process."""
    on = _switch.get("on")
    if on is None:
        on = _switch["on"] = get_settings().metrics
    return on


def record(on: bool) -> None:
    """Turn recording on or off in this process (tests, the benchmark)."""
    _switch["on"] = on


class Asked:
    """One question: its source and outcome, counted and timed when it ends."""

    __slots__ = ("outcome", "question", "source", "started")

    def __init__(self, question: str) -> None:
        self.question = question
        self.source = "worker"
        self.outcome = ""
        self.started = time.perf_counter()

    def answered(self, answer: T) -> T:
        """`answer`, counted `unknown` when it says the zipcode does not exist."""
        self.outcome = "unknown" if getattr(answer, "exists", True) is False else "answered"
        return answer

    def passed_on(self) -> None:
        """Another `Asked` (the client's, behind the gateway) counts this question."""
        self.outcome = "-"

    def __enter__(self) -> Asked:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.outcome == "-" or not recording():
            return
        outcome = self.outcome or "error"
        if isinstance(exc, ZipscoreError) and exc.code.is_refused_input:
            outcome, self.source = "refused", "none"
        count, latency = _children(self.question, outcome, self.source)
        count.inc()
        latency.observe(time.perf_counter() - self.started)


@functools.cache
def _children(question: str, outcome: str, source: str) -> tuple[Any, Any]:
    """The labelled series of a question (found once: `labels()` costs more than `inc()`)."""
    return LOOKUPS.labels(question, outcome, source), LATENCY.labels(question, source)


def asked(question: str) -> Asked:
    return Asked(question)


def chunk_resent() -> None:
    if recording():
        CHUNKS_RESENT.inc()


def batch_finished(summary: Any) -> None:
    """A job's summary (`rows`, `ok`, `unknown`, `invalid`, `rows_per_second`)."""
    if not recording():
        return
    BATCH_JOBS.inc()
    for outcome in ("ok", "unknown", "invalid"):
        BATCH_ROWS.labels(outcome).inc(int(getattr(summary, outcome, 0)))
    ROWS_PER_SECOND.set(float(getattr(summary, "rows_per_second", 0.0)))
