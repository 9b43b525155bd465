"""The one Celery application of zipscore, found as `celery -A worker`.

Run a worker for interactive lookups and the index, and one for batches:

    celery -A worker worker -Q lookups,index -c 2 -n lookups@%h
    celery -A worker worker -Q batch -c 2 -n batch@%h

Producers never import it: they send by name through `worker.contract.messaging`, whose
configuration this app starts from; task modules are loaded by the worker through `include`.
"""

from __future__ import annotations

import warnings
from typing import Any

from celery import Celery
from celery.exceptions import CPendingDeprecationWarning

from worker.beat import SCHEDULE_FILE, beat_schedule, tick_interval
from worker.broker import (
    patient_results,
    readiness,  # noqa: F401  (connects worker_ready: warns of an evicting Redis)
)
from worker.broker import sentinel as broker_sentinel
from worker.broker import transport as broker_transport
from worker.contract import log_setup  # noqa: F401  (connects Celery's setup_logging signal)
from worker.contract.messaging import messaging_config
from worker.contract.settings import Settings, get_settings
from worker.contract.tasks import QUEUES
from worker.flower import guard  # noqa: F401  (connects import_modules: Flower's safety check)

TASK_MODULES = ["worker.lookups.tasks", "worker.batch.tasks", "worker.index.tasks"]


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's configuration: the contract's messaging, then what only a worker needs."""
    config = messaging_config(settings)
    envelope_rules = {
        # Read by worker/broker/transport.py: messages on these queues must be zipscore
        # tasks; an ETA farther than the longest retry countdown is refused, as is a
        # time limit longer than the hard one (see worker/broker/envelope.py), and a message
        # with an ETA once a worker holds max_eta_messages of them.
        "task_queues": QUEUES,
        "max_eta_seconds": settings.max_eta,
        "max_time_limit": settings.task_time_limit,
        "max_eta_messages": settings.max_eta_messages,
    }
    return {
        **config,
        "broker_transport_options": {**config["broker_transport_options"], **envelope_rules},
        "broker_connection_retry_on_startup": True,
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
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_kb,
        # Events so Flower sees workers and tasks live.
        "worker_send_task_events": True,
        "task_track_started": True,
        "worker_hijack_root_logger": False,
        # Refused messages (pickle, broken bodies): one log line with the id, then dropped.
        "worker_consumer": "worker.broker.consumer:RefusingConsumer",
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
    patient_results.use()  # a result waits while Redis is out of memory
    broker_sentinel.use()  # the same for sentinel:// broker and result URLs
    celery = Celery("zipscore", include=TASK_MODULES, task_cls=patient_results.PatientTask)
    celery.conf.update(celery_config(settings or get_settings()))
    return celery


app = create_app()
