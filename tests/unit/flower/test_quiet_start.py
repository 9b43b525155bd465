"""Flower's first inspections, before any worker is up, are not warnings; later ones are."""

from __future__ import annotations

import logging

import pytest

from tests.support.paths import ROOT
from worker.flower.quiet_start import UNANSWERED, install


def inspect_fails(method: str) -> None:
    logging.getLogger("flower.inspector").warning(UNANSWERED, method)


def test_unanswered_inspections_at_start_are_debug_and_later_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("flower.inspector")
    quiet = install(grace_seconds=60)
    try:
        with caplog.at_level(logging.INFO, logger="flower.inspector"):
            inspect_fails("stats")  # not shown at INFO
        with caplog.at_level(logging.DEBUG, logger="flower.inspector"):
            inspect_fails("active_queues")  # shown at DEBUG
        with caplog.at_level(logging.INFO, logger="flower.inspector"):
            quiet.until = 0  # the start-up grace is over
            inspect_fails("registered")
            logger.warning("Inspect method %s failed: %s", "conf", "connection refused")
    finally:
        logger.removeFilter(quiet)
    levels = [(record.getMessage(), record.levelname) for record in caplog.records]
    assert levels == [
        ("Inspect method active_queues failed", "DEBUG"),
        ("Inspect method registered failed", "WARNING"),
        ("Inspect method conf failed: connection refused", "WARNING"),
    ]


def test_zipscores_flower_config_installs_it() -> None:

    config = (ROOT / "flowerconfig.py").read_text()
    assert "flower_quiet_start.install()" in config


def test_installing_twice_keeps_one_filter() -> None:
    logger = logging.getLogger("flower.inspector")
    first, second = install(grace_seconds=60), install(grace_seconds=60)
    try:
        assert first is second
        assert sum(isinstance(f, type(first)) for f in logger.filters) == 1
    finally:
        logger.removeFilter(first)
