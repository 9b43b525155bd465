"""Drill-only: kombu sweeps for unacknowledged messages every second in this worker.

kombu's Redis transport puts a delivered but unacknowledged message back on its queue once
it is older than the visibility timeout, but only when a sweep (`QoS.restore_visible`, run by
`MultiChannelPoller.maybe_restore_messages`) looks: every `unacked_restore_interval` (10 s)
times `unacked_restore_throttle` (10) seconds by default, about 100 s. A drill that wants to
see a redelivery within seconds sweeps every second, so that the visibility timeout alone
decides when a message comes back. Production workers never load this module.

    celery -A worker worker -I ops.drills.fast_restore

Loaded with `-I`, it runs while Celery builds the worker (`WorkController.setup_includes`),
before the consumer creates its broker connection, which copies the transport options then
(`Celery.connection_for_read`).
"""

from __future__ import annotations

from ops.drills.drill_timing import SWEEP_SECONDS
from worker.celery_app import app


def sweep_every_second() -> None:
    """Run kombu's sweep for messages past their visibility timeout every second."""
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "unacked_restore_interval": SWEEP_SECONDS,
        "unacked_restore_throttle": 1,  # every sweep looks at Redis, not every tenth
    }


sweep_every_second()
