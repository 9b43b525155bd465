"""The one Celery application of zipscore, found as `celery -A worker`.

Run a worker for interactive lookups and the index, and one for batches:

    celery -A worker worker -Q lookups,index -c 2 -n lookups@%h
    celery -A worker worker -Q batch -c 2 -n batch@%h

Producers import `app` only to `send_task` by name: this module imports nothing heavy
(no psycopg, no HTTP client); task modules are loaded by the worker through `include`.
"""

from __future__ import annotations

import warnings
from typing import Any

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning
from kombu import Queue

import worker.flower_guard  # connects Celery's import_modules signal: Flower's safety check
import worker.log_setup  # noqa: F401  (connects Celery's setup_logging signal)
from worker import (
    broker_memory,
    broker_sentinel,
    broker_transport,
    redis_health,  # noqa: F401  (connects worker_ready: warns of an evicting Redis)
)
from worker.beat import SCHEDULE_FILE, beat_schedule, tick_interval
from worker.settings import Settings, get_settings

QUEUES = ("lookups", "batch", "index")
TASK_MODULES = ["worker.tasks", "worker.index_tasks"]


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's configuration, every choice derived from zipscore's settings."""
    prefix = f"{settings.redis_prefix}:"
    transport = {
        # Keys of this deployment (or test run) never collide with another on the same Redis.
        "global_keyprefix": prefix,
        # A message unacknowledged this long is handed to another worker: keep it above
        # the hard time limit and every retry countdown, or a task can run twice.
        "visibility_timeout": settings.visibility_timeout_seconds,
        "socket_connect_timeout": 5,
        "socket_timeout": 30,
        "retry_on_timeout": True,
        # Read by worker/broker_transport.py: messages on these queues must be zipscore
        # tasks; an ETA farther than the longest retry countdown is refused, as is a
        # time limit longer than the hard one (see worker/envelope.py), and a message
        # with an ETA once a worker holds max_eta_messages of them.
        "task_queues": QUEUES,
        "max_eta_seconds": settings.max_eta,
        "max_time_limit": settings.task_time_limit,
        "max_eta_messages": settings.max_eta_messages,
    }
    broker, result_backend, behind_sentinel = settings.broker, settings.result_backend, {}
    if settings.sentinels:  # worker/broker_sentinel.py: both follow the promoted primary
        broker = broker_sentinel.sentinel_url(broker, settings.sentinel_addresses)
        result_backend = broker_sentinel.sentinel_url(result_backend, settings.sentinel_addresses)
        behind_sentinel = {"master_name": settings.sentinel_master}
        transport.update(behind_sentinel)
    return {
        "broker_url": broker,
        "result_backend": result_backend,
        "broker_transport_options": transport,
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
        "broker_connection_retry_on_startup": True,
        # JSON only, everywhere: pickle is never accepted.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "event_serializer": "json",
        # Acknowledge after the work is done; every task is idempotent so a redelivery is safe.
        "task_acks_late": True,
        # A pool process that dies mid-task (SIGKILL, out of memory) fails its task with
        # WorkerLostError instead of putting the message back: a message that kills its
        # worker would otherwise be delivered again and again. Callers already handle it:
        # a lookup answers the error, a batch producer resends the chunk.
        "task_reject_on_worker_lost": False,
        # A cold shutdown (SIGQUIT; compose maps its SIGTERM to it with REMAP_SIGTERM) first
        # lets running tasks finish for this long, then puts the rest back on their queue
        # at once, rather than leaving them unacknowledged for the visibility timeout. Keep
        # it under the stop grace period (compose: 45 s of 60 for workers, 110 of 120 for
        # batch workers). An idle worker does not wait (every container stop would take the
        # whole window): kombu restores the messages it holds when its channel closes. Celery
        # warns that this can miss messages held for an ETA (an index retry): those then come
        # back after the visibility timeout, which is the price of a prompt stop.
        "worker_soft_shutdown_timeout": settings.worker_soft_shutdown_seconds,
        "worker_enable_soft_shutdown_on_idle": False,
        # With the broker gone, a running task's acknowledgement cannot reach it and Redis
        # delivers the message again after the visibility timeout, whatever the worker does.
        # Finishing the task still stores its result once Redis is back, so the producer
        # waiting on it is answered now rather than an hour later; every task is idempotent,
        # so the later second run changes nothing. (Celery's warning about this default is
        # silenced below: the choice is made.)
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "result_expires": settings.result_expires_seconds,
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_kb,
        "task_publish_retry_policy": {
            "max_retries": 3,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 2,
        },
        # Events so Flower sees workers and tasks live.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "task_track_started": True,
        "worker_hijack_root_logger": False,
        # Refused messages (pickle, broken bodies): one log line with the id, then dropped.
        "worker_consumer": "worker.consumer:RefusingConsumer",
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": "lookups",
        "task_routes": {
            "zipcodes.*": {"queue": "lookups"},
            "batch.*": {"queue": "batch"},
            "index.*": {"queue": "index"},
        },
        "timezone": "Europe/Brussels",
        "enable_utc": True,
        # One beat at a time (a Redis lock), its state in a directory a non-root user owns.
        "beat_scheduler": "worker.beat:LockedScheduler",
        "beat_schedule": beat_schedule(settings),
        "beat_schedule_filename": str(settings.beat_schedule_dir / SCHEDULE_FILE),
        "beat_max_loop_interval": tick_interval(settings),
    }


def quiet_decided_warnings() -> None:
    """Silence Celery's warning about a default zipscore has chosen (see celery_config)."""
    warnings.filterwarnings(
        "ignore",
        message=r"\s*In Celery 5\.1 we introduced an optional breaking change",
        category=CPendingDeprecationWarning,
    )


def create_app(settings: Settings | None = None) -> Celery:
    """Build the Celery app from settings; called once, below."""
    broker_transport.use()  # survives a broker restart with messages in hand
    quiet_decided_warnings()
    broker_memory.use()  # a result waits while Redis is out of memory
    broker_sentinel.use()  # the same for sentinel:// broker and result URLs
    celery = Celery("zipscore", include=TASK_MODULES, task_cls=broker_memory.PatientTask)
    celery.conf.update(celery_config(settings or get_settings()))
    return celery


app = create_app()
