"""Flower's start-up, without a warning for each inspection no worker was up to answer yet.

Flower inspects the workers as soon as it starts; under `make run` (or a compose start) it
starts beside them, and each of its first inspections finds no worker yet and logs
"Inspect method ... failed" at WARNING: four lines that say nothing is wrong. This filter
lowers exactly those records to DEBUG during a grace period after Flower starts (shown only
with `--logging=debug`); after it, an inspection that no worker answers is worth the warning
again. flowerconfig.py installs it.
"""

from __future__ import annotations

import logging
import time

START_GRACE_SECONDS = 30.0
UNANSWERED = "Inspect method %s failed"  # flower/inspector.py: no worker replied


class QuietStart(logging.Filter):
    """Lower Flower's "no worker answered" warnings to DEBUG while Flower is starting."""

    def __init__(self, grace_seconds: float = START_GRACE_SECONDS) -> None:
        super().__init__()
        self.until = time.monotonic() + grace_seconds

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == UNANSWERED and time.monotonic() < self.until:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            # The logger's level was checked at WARNING: check it again at DEBUG.
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def install(grace_seconds: float = START_GRACE_SECONDS) -> QuietStart:
    """Attach the filter to Flower's inspector logger once (the config file may be read
    more than once); a second call starts the grace period again. Returns the filter."""
    logger = logging.getLogger("flower.inspector")
    for existing in logger.filters:
        if isinstance(existing, QuietStart):
            existing.until = time.monotonic() + grace_seconds
            return existing
    quiet = QuietStart(grace_seconds)
    logger.addFilter(quiet)
    return quiet
