"""Series of the deployment's shared state, read from Redis when Prometheus scrapes.

    registry.register(DeploymentCollector.from_settings(settings))

Exported by the gateway (a producer): the queues, the current risk table and the index are
the deployment's, not one process's, so one exporter reads them, at scrape time, in one
pipelined round trip:

- `celery_queue_length{queue_name}`: messages waiting on each Celery queue (LLEN of the
  queue's keys under the deployment's prefix, every priority level summed), as
  celery-exporter names it;
- `zipscore_risk_table_version`: the version published in the result cache (absent before
  any worker has answered from a table);
- `zipscore_index_age_seconds{base_year}`: seconds since the latest index entry of a base
  year was fetched from the source (absent when no refresh has stored one).

When Redis does not answer, the scrape still succeeds with `zipscore_redis_up 0` and without
the series above (their absence is what the alerts look for, not a stale value).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.backoff import NoBackoff
from redis.retry import Retry

from worker.contract.settings import Settings
from worker.contract.tasks import QUEUES

# Kombu's Redis transport keeps one list per priority step; 0 is the queue's own name.
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)


def queue_keys(prefix: str, queue: str) -> list[str]:
    """The Redis lists holding `queue`'s messages, highest priority first."""
    return [
        f"{prefix}:{queue}" if step == 0 else f"{prefix}:{queue}{PRIORITY_SEPARATOR}{step}"
        for step in PRIORITY_STEPS
    ]


def no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


class DeploymentCollector(Collector):
    """Queue depths, the risk table version and the index age, read at each scrape."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        base_years: Iterable[int],
        queues: Sequence[str] = QUEUES,
    ) -> None:
        self._redis = client
        self._prefix = prefix
        self._base_years = tuple(base_years)
        self._queues = tuple(queues)

    @classmethod
    def from_settings(cls, settings: Settings) -> DeploymentCollector:
        # No retries: a scrape answers within its timeout, Redis down or not.
        client = redis.Redis.from_url(
            settings.cache, socket_connect_timeout=2, socket_timeout=2, retry=no_retry()
        )
        return cls(client, settings.redis_prefix, settings.index_base_years)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("zipscore_redis_up", "1 when Redis answered this scrape")
        pipe = self._redis.pipeline(transaction=False)
        for queue in self._queues:
            for key in queue_keys(self._prefix, queue):
                pipe.llen(key)
        pipe.get(f"{self._prefix}:cache:risk-table-version")
        for year in self._base_years:
            pipe.get(f"{self._prefix}:cache:index:latest:{year}")
        try:
            replies = pipe.execute()
        except (redis.RedisError, OSError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        steps = len(PRIORITY_STEPS)
        lengths = GaugeMetricFamily(
            "celery_queue_length", "Messages waiting on a Celery queue", labels=["queue_name"]
        )
        for number, queue in enumerate(self._queues):
            lengths.add_metric([queue], sum(replies[number * steps : (number + 1) * steps]))
        yield lengths
        rest = replies[len(self._queues) * steps :]
        version = GaugeMetricFamily(
            "zipscore_risk_table_version", "Version of the risk table lookups answer from"
        )
        if rest[0] is not None:
            version.add_metric([], int(rest[0]))
        yield version
        age = GaugeMetricFamily(
            "zipscore_index_age_seconds",
            "Seconds since the latest health index of a base year was fetched",
            labels=["base_year"],
        )
        now = datetime.now(UTC)
        for year, raw in zip(self._base_years, rest[1:], strict=True):
            fetched = _fetched_at(raw)
            if fetched is not None:
                age.add_metric([str(year)], max(0.0, (now - fetched).total_seconds()))
        yield age


def _fetched_at(raw: bytes | None) -> datetime | None:
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(str(json.loads(raw)["fetched_at"]))
    except (ValueError, KeyError, TypeError):
        return None
