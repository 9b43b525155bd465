"""Celery beat for zipscore: the schedule, and a scheduler that runs only while it holds a lock.

    celery -A worker beat        # schedule file under ZIPSCORE_BEAT_SCHEDULE_DIR (var/)

Exactly one beat may send periodic tasks, or each refresh would be sent once per beat.
`LockedScheduler` ticks only while it holds a Redis lock (`worker.beat_lock`); a second
beat stays in standby, polling the lock, and takes over when the first stops or dies.
On becoming the active beat it sends `index.refresh(if_empty=True)`: the service refreshes
once at start when no history is stored yet, and the worker's emptiness check makes the
message harmless otherwise (a takeover, a restart).
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import redis
from celery.beat import PersistentScheduler
from celery.schedules import crontab

from worker.beat_lock import RedisLock
from worker.contract.result_cache import redis_client
from worker.contract.settings import Settings, get_settings

logger = logging.getLogger(__name__)

REFRESH_ENTRY = "index-refresh"
SCHEDULE_FILE = "celerybeat-schedule"


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """The periodic tasks: the health index refresh on its cron schedule (Europe/Brussels)."""
    minute, hour, day, month, weekday = settings.index_refresh_crontab
    return {
        REFRESH_ENTRY: {
            "task": "index.refresh",
            "schedule": crontab(
                minute=minute,
                hour=hour,
                day_of_month=day,
                month_of_year=month,
                day_of_week=weekday,
            ),
            # A refresh no worker picked up within a day is superseded by the next one.
            "options": {"queue": "index", "expires": 20 * 3600},
        }
    }


def tick_interval(settings: Settings) -> float:
    """Longest sleep between ticks: a third of the lock's TTL, so renewals come in time."""
    return max(1.0, settings.beat_lock_ttl_seconds / 3)


class LockedScheduler(PersistentScheduler):  # type: ignore[misc]
    """A `PersistentScheduler` that schedules nothing unless it holds the beat lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        settings = get_settings()
        self._ttl = float(settings.beat_lock_ttl_seconds)
        self._poll = tick_interval(settings)
        self._lock = RedisLock(
            redis_client(settings.broker), f"{settings.redis_prefix}:beat:lock", self._ttl
        )
        self._held_since_renewal: float | None = None
        self._waiting_logged = False
        super().__init__(*args, **kwargs)

    def setup_schedule(self) -> None:
        Path(self.schedule_filename).parent.mkdir(parents=True, exist_ok=True)
        super().setup_schedule()

    @property
    def holds_lock(self) -> bool:
        return self._held_since_renewal is not None

    def tick(self, *args: Any, **kwargs: Any) -> float:
        if not self._keep_or_take_lock():
            return self._poll
        return float(min(super().tick(*args, **kwargs), self._poll))

    def _keep_or_take_lock(self) -> bool:
        now = time.monotonic()
        try:
            held = self._renew(now) if self.holds_lock else self._take(now)
        except redis.RedisError as exc:
            # Without Redis the lock cannot be confirmed: keep scheduling only while the last
            # renewal still covers us (the broker is most likely down as well).
            renewed = self._held_since_renewal
            if renewed is not None and now - renewed < self._ttl:
                return True
            logger.error("beat: Redis unreachable for the beat lock (%s)", type(exc).__name__)
            self._held_since_renewal = None
            return False
        return held

    def _renew(self, now: float) -> bool:
        assert self._held_since_renewal is not None
        if now - self._held_since_renewal < self._poll:
            return True
        if self._lock.renew():
            self._held_since_renewal = now
            return True
        logger.error("beat: lost the beat lock %s; back to standby", self._lock.key)
        self._held_since_renewal = None
        return False

    def _take(self, now: float) -> bool:
        if self._lock.acquire():
            self._held_since_renewal = now
            logger.warning("beat: acquired the beat lock %s; scheduling", self._lock.key)
            self._on_active()
            return True
        if not self._waiting_logged:
            logger.warning(
                "beat: another beat holds the lock %s (%s); standing by",
                self._lock.key,
                self._lock.holder(),
            )
            self._waiting_logged = True
        return False

    def _on_active(self) -> None:
        try:
            self.app.send_task("index.refresh", kwargs={"if_empty": True}, queue="index")
        except Exception as exc:  # the broker is down; the daily schedule will catch up
            logger.error("beat: could not send the start-up refresh (%s)", type(exc).__name__)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._held_since_renewal is not None:
                with contextlib.suppress(redis.RedisError):  # it expires after its TTL anyway
                    self._lock.release()
                self._held_since_renewal = None
