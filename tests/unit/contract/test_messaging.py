"""The messaging both sides agree on, and the producer's task-less Celery app."""

from __future__ import annotations

from tests.support.settings import MakeSettings
from worker.celery_app import celery_config
from worker.contract.messaging import messaging_config, sending_app
from worker.contract.tasks import QUEUES


def test_the_worker_starts_from_the_producers_messaging(make_settings: MakeSettings) -> None:
    settings = make_settings()
    shared, worker = messaging_config(settings), celery_config(settings)
    for key in ("broker_url", "result_backend", "task_serializer", "accept_content", "task_routes"):
        assert worker[key] == shared[key], key
    assert worker["broker_transport_options"].items() >= shared["broker_transport_options"].items()


def test_one_sending_app_per_configuration_that_loads_no_task_module(
    make_settings: MakeSettings,
) -> None:
    first = sending_app(make_settings())
    assert sending_app(make_settings()) is first  # one connection pool, however many clients
    other = sending_app(make_settings(redis_prefix="another-deployment"))
    assert other is not first
    assert other.conf.broker_transport_options["global_keyprefix"] == "another-deployment:"
    # No task module of its own: in a process that imported none (a producer), it has none.
    assert list(first.conf.include or ()) == []
    assert not first.conf.imports
    assert {queue.name for queue in first.conf.task_queues} == set(QUEUES)
    assert first.conf.accept_content == ["json"]


def test_sentinels_turn_both_urls_into_sentinel_urls(make_settings: MakeSettings) -> None:
    config = messaging_config(
        make_settings(sentinels=("10.0.0.5:26379", "10.0.0.6:26379"), sentinel_master="zs")
    )
    assert config["broker_url"].startswith("sentinel://10.0.0.5:26379/0;sentinel://10.0.0.6")
    assert config["result_backend"].startswith("sentinel://")
    assert config["broker_transport_options"]["master_name"] == "zs"
    assert config["result_backend_transport_options"]["master_name"] == "zs"
