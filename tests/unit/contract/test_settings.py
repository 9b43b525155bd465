"""Settings from the environment, and the Celery configuration derived from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import RedisDsn

from tests.support.settings import MakeSettings
from worker.celery_app import celery_config, create_app
from worker.contract.settings import Settings
from worker.contract.tasks import QUEUES
from worker.database.migrations import discover


def test_defaults_point_at_localhost(
    monkeypatch: pytest.MonkeyPatch, make_settings: MakeSettings
) -> None:
    for name in ("ZIPSCORE_DATABASE_URL", "ZIPSCORE_REDIS_URL", "ZIPSCORE_REDIS_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    settings = make_settings()
    assert settings.database == "postgresql://postgres@127.0.0.1:5432/postgres"
    assert (
        settings.broker == settings.result_backend == settings.cache == "redis://127.0.0.1:6379/0"
    )


def test_split_redis_urls(monkeypatch: pytest.MonkeyPatch, make_settings: MakeSettings) -> None:
    monkeypatch.setenv("ZIPSCORE_REDIS_URL", "redis://h:6379/0")
    monkeypatch.setenv("ZIPSCORE_CACHE_URL", "redis://c:6379/2")
    settings = make_settings()
    assert settings.broker == "redis://h:6379/0"
    assert settings.cache == "redis://c:6379/2"


def test_dotenv_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ZIPSCORE_LOOKUP_TIMEOUT", raising=False)
    (tmp_path / ".env").write_text("ZIPSCORE_LOOKUP_TIMEOUT=7.5\n")
    monkeypatch.chdir(tmp_path)
    assert Settings().lookup_timeout == 7.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ZIPSCORE_DATABASE_URL", "mysql://x/y"),
        ("ZIPSCORE_REDIS_URL", "http://nope"),
        ("ZIPSCORE_LOOKUP_TIMEOUT", "soon"),
        ("ZIPSCORE_REDIS_PREFIX", "bad prefix with spaces"),
        ("ZIPSCORE_TASK_TIME_LIMIT", "10"),
        ("ZIPSCORE_LOG_FORMAT", "xml"),
    ],
)
def test_bad_settings_are_named_in_a_clear_error(
    settings_error: Callable[[dict[str, str]], str], name: str, value: str
) -> None:
    message = settings_error({name: value})
    assert name in message
    assert value not in message or len(value) < 3


def test_secrets_in_urls_never_appear_in_setting_errors(
    settings_error: Callable[[dict[str, str]], str],
) -> None:
    message = settings_error({"ZIPSCORE_DATABASE_URL": "mysql://user:s3cr3t-pw@db/x"})
    assert "s3cr3t-pw" not in message


def test_celery_is_json_only_with_late_acks_and_limits(make_settings: MakeSettings) -> None:
    config = celery_config(make_settings())
    assert config["accept_content"] == ["json"]
    assert config["result_accept_content"] == ["json"]
    assert config["task_serializer"] == config["result_serializer"] == "json"
    assert config["task_acks_late"] is True
    assert config["worker_prefetch_multiplier"] == 1
    assert config["task_soft_time_limit"] < config["task_time_limit"]
    assert config["task_time_limit"] < config["broker_transport_options"]["visibility_timeout"]
    assert config["broker_connection_retry_on_startup"] is True
    assert config["worker_send_task_events"]
    assert config["task_send_sent_event"]
    assert {q.name for q in config["task_queues"]} == set(QUEUES)


def test_shutdown_and_connection_loss_choices_are_explicit(make_settings: MakeSettings) -> None:
    config = celery_config(make_settings())
    assert config["task_reject_on_worker_lost"] is False  # no redelivery loop of a killer
    assert 0 < config["worker_soft_shutdown_timeout"] < 60  # under compose's grace period
    assert config["worker_enable_soft_shutdown_on_idle"] is False
    assert config["worker_cancel_long_running_tasks_on_connection_loss"] is False


def test_celerys_warning_about_the_connection_loss_default_is_silenced() -> None:
    import warnings

    from celery.exceptions import CPendingDeprecationWarning
    from celery.worker.consumer.consumer import CANCEL_TASKS_BY_DEFAULT

    from worker.celery_app import quiet_decided_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_decided_warnings()
        warnings.warn(CANCEL_TASKS_BY_DEFAULT, CPendingDeprecationWarning, stacklevel=1)
        warnings.warn("another warning", CPendingDeprecationWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["another warning"]


def test_the_prefix_isolates_broker_and_results(
    monkeypatch: pytest.MonkeyPatch, make_settings: MakeSettings
) -> None:
    monkeypatch.setenv("ZIPSCORE_REDIS_PREFIX", "blue")
    app = create_app(make_settings())
    assert app.conf.broker_transport_options["global_keyprefix"] == "blue:"
    assert app.conf.result_backend_transport_options["global_keyprefix"] == "blue:"


def test_migrations_are_numbered_and_ordered(tmp_path: Path) -> None:
    assert [m.version for m in discover()][:1] == [1]
    (tmp_path / "0002_b.sql").write_text("")
    (tmp_path / "0001_a.sql").write_text("")
    assert [m.version for m in discover(tmp_path)] == [1, 2]
    (tmp_path / "0001_again.sql").write_text("")
    with pytest.raises(ValueError, match="two migrations"):
        discover(tmp_path)


def test_misnamed_migration_is_refused(tmp_path: Path) -> None:
    (tmp_path / "init.sql").write_text("")
    with pytest.raises(ValueError, match=r"NNNN_name\.sql"):
        discover(tmp_path)


def test_a_channel_whose_connection_is_gone_raises_a_connection_error() -> None:
    # Celery and kombu treat redis's ConnectionError as a lost connection and reconnect;
    # kombu's own channel raised AttributeError here and the worker exited
    # (worker/broker/transport.py; the drill in tests/drills/broker/test_broker_restart.py).
    from types import SimpleNamespace

    import redis

    from worker.broker.transport import Channel, Transport

    channel = Channel.__new__(Channel)
    channel.connection = SimpleNamespace(client=None)
    with pytest.raises(redis.ConnectionError, match="closed"):
        channel._connparams()
    assert Transport.Channel is Channel
    assert redis.ConnectionError in Transport.connection_errors


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_the_app_uses_zipscore_s_redis_transport_under_the_redis_scheme(scheme: str) -> None:
    from worker.broker.transport import Transport

    url = f"{scheme}://:secret@127.0.0.1:6390/0"
    app = create_app(Settings(redis_url=RedisDsn(url)))
    with app.connection_for_write() as connection:  # not connected: nothing is sent
        assert isinstance(connection.transport, Transport)
        # Flower and the worker's banner read the scheme back from the connection.
        assert connection.as_uri() == f"{scheme}://:**@127.0.0.1:6390/0"


def test_importing_the_drills_leaves_this_process_s_broker_options_alone() -> None:
    # Regression: the visibility-timeout drill imported the drill-only worker modules for
    # their figures, which lowered this process's visibility timeout to 4 s at import and
    # broke the settings tests that ran after it in the same session.
    import importlib

    from worker.celery_app import app

    before = dict(app.conf.broker_transport_options)
    importlib.import_module("tests.drills.broker.test_visibility_timeout")
    assert app.conf.broker_transport_options == before


def test_the_transport_is_zipscore_s_even_if_kombu_resolved_redis_before() -> None:
    from kombu.transport import get_transport_cls
    from kombu.transport import redis as kombu_redis

    from worker.broker import transport as broker_transport

    broker_transport.use()
    assert get_transport_cls("redis") is broker_transport.Transport
    # A process that resolved "redis" before the app was built (kombu caches the class).
    from kombu.transport import TRANSPORT_ALIASES, _transport_cache

    TRANSPORT_ALIASES["redis"] = "kombu.transport.redis:Transport"
    _transport_cache.pop("redis", None)
    assert get_transport_cls("redis") is kombu_redis.Transport
    broker_transport.use()
    assert get_transport_cls("redis") is broker_transport.Transport
