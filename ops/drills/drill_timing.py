"""The timings the drill-only worker modules set, without setting them.

`ops.drills.fast_restore` and `ops.drills.short_visibility` change the Celery app's broker
options when they are imported (that is their job, in a drill's worker). The drills that
start such workers read the figures here, so that importing them into the test process
changes nothing there.
"""

from __future__ import annotations

SWEEP_SECONDS = 1  # kombu's sweep for expired unacknowledged messages (fast_restore)
VISIBILITY_TIMEOUT_SECONDS = 4  # the bypassed visibility timeout (short_visibility)
