"""How both sides reach the broker: the Celery settings they must agree on, and a sender.

The worker's app (worker/celery_app.py) starts from `messaging_config`; a producer sends
tasks by name through `sending_app`, a Celery app with no tasks, so it never imports the
code that runs them (nor psycopg, nor Flower).
"""

from __future__ import annotations

import json
import threading
from typing import Any

from celery import Celery
from kombu import Queue

from worker.contract.sentinel import sentinel_url
from worker.contract.settings import Settings
from worker.contract.tasks import DEFAULT_QUEUE, QUEUES, ROUTES


def messaging_config(settings: Settings) -> dict[str, Any]:
    """Broker, results, serialisation and routing: every choice derived from settings."""
    prefix = f"{settings.redis_prefix}:"
    broker, result_backend, behind_sentinel = settings.broker, settings.result_backend, {}
    if settings.sentinels:  # worker/contract/sentinel.py: both follow the promoted primary
        broker = sentinel_url(broker, settings.sentinel_addresses)
        result_backend = sentinel_url(result_backend, settings.sentinel_addresses)
        behind_sentinel = {"master_name": settings.sentinel_master}
    return {
        "broker_url": broker,
        "result_backend": result_backend,
        "broker_transport_options": {
            **behind_sentinel,
            # Keys of this deployment (or test run) never collide with another on one Redis.
            "global_keyprefix": prefix,
            # A message unacknowledged this long is handed to another worker: keep it above
            # the hard time limit and every retry countdown, or a task can run twice.
            "visibility_timeout": settings.visibility_timeout_seconds,
            "socket_connect_timeout": 5,
            "socket_timeout": 30,
            "retry_on_timeout": True,
        },
        "result_backend_transport_options": {
            **behind_sentinel,
            "global_keyprefix": prefix,
            # Give up reconnecting after ~1.5 s so a producer answers BACKEND_UNAVAILABLE
            # within its timeout instead of hanging (the default retries for ~20 s).
            "retry_policy": {
                "max_retries": 3,
                "interval_start": 0,
                "interval_step": 0.5,
                "interval_max": 0.5,
            },
        },
        # JSON only, everywhere: pickle is never accepted.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        "task_send_sent_event": True,
        "result_expires": settings.result_expires_seconds,
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": DEFAULT_QUEUE,
        "task_routes": ROUTES,
        "timezone": "Europe/Brussels",
        "enable_utc": True,
    }


def sending_app(settings: Settings) -> Celery:
    """A producer's Celery app for these settings: it sends tasks by name and reads results.

    One app (and so one connection pool) per distinct configuration, however many clients
    ask for it.
    """
    config = messaging_config(settings)
    key = json.dumps(config, default=str, sort_keys=True)
    with _LOCK:
        found = _SENDERS.get(key)
        if found is None:
            found = _SENDERS[key] = Celery("zipscore")
            found.conf.update(config)
    return found


_SENDERS: dict[str, Celery] = {}
_LOCK = threading.Lock()
