"""Celery beat: the schedule from settings, and the lock that lets only one beat schedule."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from celery.schedules import crontab

from tests.support.settings import MakeSettings
from worker import beat
from worker.beat import LockedScheduler, beat_schedule
from worker.beat_lock import RedisLock
from worker.celery_app import app, celery_config


def test_the_schedule_refreshes_the_index_daily_in_brussels_time(
    make_settings: MakeSettings,
) -> None:
    config = celery_config(make_settings())
    entry = config["beat_schedule"]["index-refresh"]
    assert entry["task"] == "index.refresh"
    assert entry["schedule"] == crontab(minute="15", hour="7")
    assert entry["options"]["queue"] == "index"
    assert config["timezone"] == "Europe/Brussels"
    assert config["beat_scheduler"] == "worker.beat:LockedScheduler"
    assert config["beat_schedule_filename"] == "var/celerybeat-schedule"
    assert config["beat_max_loop_interval"] == 20


def test_the_refresh_cron_and_schedule_directory_come_from_settings(
    monkeypatch: pytest.MonkeyPatch,
    make_settings: MakeSettings,
) -> None:
    monkeypatch.setenv("ZIPSCORE_INDEX_REFRESH_CRON", "0 */6 * * 1-5")
    monkeypatch.setenv("ZIPSCORE_BEAT_SCHEDULE_DIR", "/data/beat")
    settings = make_settings()
    schedule = beat_schedule(settings)["index-refresh"]["schedule"]
    assert schedule == crontab(minute="0", hour="*/6", day_of_week="1-5")
    assert celery_config(settings)["beat_schedule_filename"] == "/data/beat/celerybeat-schedule"


def test_the_lock_is_held_by_one_token_at_a_time() -> None:
    client = fakeredis.FakeRedis()
    first, second = RedisLock(client, "k", 5), RedisLock(client, "k", 5)
    assert first.acquire()
    assert not second.acquire()
    assert second.holder() == first.token
    assert first.renew()
    assert not second.renew()
    assert not second.release()
    assert client.pttl("k") > 4000
    assert first.release()
    assert second.acquire()
    assert not first.renew()


def test_an_abandoned_lock_expires_by_itself() -> None:
    client = fakeredis.FakeRedis()
    RedisLock(client, "k", 0.05).acquire()
    assert client.pttl("k") <= 50


@pytest.fixture
def shared_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[fakeredis.FakeRedis]:
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(beat, "redis_client", lambda url: client)
    yield client
    client.flushall()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, dict[str, Any]]]:
    messages: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(
        app, "send_task", lambda name, kwargs=None, **_: messages.append((name, kwargs or {}))
    )
    return messages


def scheduler(directory: Path) -> LockedScheduler:
    return LockedScheduler(app=app, schedule_filename=str(directory / "s" / "celerybeat-schedule"))


@pytest.mark.usefixtures("shared_redis")
def test_a_second_beat_stands_by_until_the_first_stops(
    tmp_path: Path, sent: list[tuple[str, dict[str, Any]]]
) -> None:
    first, second = scheduler(tmp_path / "a"), scheduler(tmp_path / "b")
    first.tick()
    assert first.holds_lock
    assert sent == [("index.refresh", {"if_empty": True})]
    assert second.tick() == pytest.approx(20)
    assert not second.holds_lock
    assert len(sent) == 1  # the standby sends nothing
    first.close()
    second.tick()
    assert second.holds_lock
    assert len(sent) == 2
    second.close()


def test_the_schedule_directory_is_created(
    tmp_path: Path, shared_redis: fakeredis.FakeRedis, sent: list[Any]
) -> None:
    beat_ = scheduler(tmp_path / "deep")
    assert (tmp_path / "deep" / "s").is_dir()
    beat_.close()


def test_a_beat_that_lost_its_lock_stops_scheduling(
    tmp_path: Path, shared_redis: fakeredis.FakeRedis, sent: list[Any], monkeypatch: Any
) -> None:
    active = scheduler(tmp_path)
    active.tick()
    shared_redis.set(f"{active._lock.key}", "someone-else")
    monkeypatch.setattr("worker.beat.time.monotonic", lambda: 10**9)  # long past a renewal
    assert active.tick() == pytest.approx(20)
    assert not active.holds_lock
    active.close()
    assert shared_redis.get(active._lock.key) == b"someone-else"
