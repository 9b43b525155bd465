"""Redis behind Sentinel: broker, result backend and direct clients follow the promoted primary.

Set both, and every Redis connection of zipscore asks the Sentinels which server is the
primary of the group, now and after each failover:

    ZIPSCORE_SENTINELS=10.0.0.5:26379,10.0.0.6:26379,10.0.0.7:26379
    ZIPSCORE_SENTINEL_MASTER=zipscore

The Redis URLs (ZIPSCORE_REDIS_URL and the broker, result and cache URLs) then give the
password and the database number only; their host and port are not used. Unset (the
default), zipscore connects to the URLs' host as before.

- Broker: kombu's `sentinel://` transport (the URL `sentinel://h1:p1;sentinel://h2:p2/db`
  is built from the settings, `master_name` goes into the transport options), with
  zipscore's own channel (worker/broker/transport.py: every message checked, refused ones
  dead-lettered, a lost connection reported as one; worker/broker/memory.py: no message
  taken while Redis is out of memory). What differs from kombu's plain Redis transport is
  kombu's Sentinel part only: each new connection asks a Sentinel for the primary, and
  broadcasts (remote control, events) use kombu's Sentinel fanout topic.
- Result backend: Celery's `sentinel://` backend with zipscore's out-of-memory patience
  (`PatientBackend`).
- Direct clients: see worker/contract/sentinel.py.

Redis replication is asynchronous: a write the old primary acknowledged but had not sent to
its replica when it died is gone after the failover. For zipscore that is a queued message
(a lookup's producer then times out and may ask again; a batch chunk is sent again at its
deadline), a stored result (the same), a cache entry (recomputed), or a batch chunk's
output or job record (a chunk is scored again; a lost job record makes `zipscore score`
stop with "the job record was lost" and say to start again). The failover drill
(tests/drills/broker/test_sentinel_failover.py) measures what a failover costs.
"""

from __future__ import annotations

from celery.app import backends as celery_backends
from celery.backends.redis import SentinelBackend
from kombu.transport import TRANSPORT_ALIASES, _transport_cache
from kombu.transport import redis as kombu_redis

from worker.broker import patient_results
from worker.broker import transport as broker_transport

SENTINEL_OPTIONS = (
    "master_name",
    "min_other_sentinels",
    "sentinel_kwargs",
    "sentinel_fanout_compat",
)


class SentinelChannel(broker_transport.Channel, kombu_redis.SentinelChannel):
    """zipscore's checked, patient channel on a Sentinel-managed connection pool."""

    from_transport_options = (  # type: ignore[assignment]  # kombu's is a fixed tuple
        *broker_transport.Channel.from_transport_options,
        *SENTINEL_OPTIONS,
    )


class SentinelTransport(broker_transport.Transport):
    default_port = 26379  # type: ignore[assignment]  # kombu's base declares None
    Channel = SentinelChannel


class PatientSentinelBackend(patient_results.PatientBackend, SentinelBackend):  # type: ignore[misc]
    """Celery's Sentinel result backend, waiting while Redis is out of memory."""


def use() -> None:
    """Make this module's transport and backend those of sentinel:// URLs in this process."""
    TRANSPORT_ALIASES["sentinel"] = f"{__name__}:SentinelTransport"
    _transport_cache.pop("sentinel", None)
    celery_backends.BACKEND_ALIASES["sentinel"] = f"{__name__}:PatientSentinelBackend"
