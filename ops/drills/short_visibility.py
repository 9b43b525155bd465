"""Drill-only: a visibility timeout far below what zipscore's settings allow.

`worker.contract.settings.Settings` refuses a visibility timeout under twice the longest time a
message can stay unacknowledged (the hard time limit plus the longest retry countdown), and
under 60 s at all: Redis would hand a message a worker is still running to another worker.
This module bypasses the guard in one worker process, to show what it prevents
(tests/drills/broker/test_visibility_timeout.py); there is no such switch in the production code.

    celery -A worker worker -I ops.drills.drill_tasks,ops.drills.short_visibility

It also sweeps for expired messages every second (`ops.drills.fast_restore`). Loaded with
`-I`, it runs before the consumer's broker connection exists (see that module).
"""

from __future__ import annotations

import logging

from ops.drills.drill_timing import VISIBILITY_TIMEOUT_SECONDS
from ops.drills.fast_restore import sweep_every_second
from worker.celery_app import app


def lower_the_visibility_timeout() -> None:
    """Set the broker's visibility timeout to `VISIBILITY_TIMEOUT_SECONDS`, past the guard."""
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
    }
    logging.getLogger(__name__).warning(
        "drill: broker visibility timeout lowered to %d s, under the settings guard",
        VISIBILITY_TIMEOUT_SECONDS,
    )


sweep_every_second()
lower_the_visibility_timeout()
