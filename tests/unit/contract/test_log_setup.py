"""Structured logs: one line per event, JSON on request, with the task id and name."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from worker.celery_app import app
from worker.contract import log_setup


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield stream
    root.handlers[:], root.level = saved[0], saved[1]


@app.task(name="tests.log_something")
def log_something() -> str:
    logging.getLogger("zipscore.test").warning("inside %s", "a task")
    return "done"


def test_json_lines_carry_the_task_id_and_name(captured: io.StringIO) -> None:
    log_setup.configure(logging.INFO, "json", captured)
    result = log_something.apply(task_id="task-123")
    assert result.get() == "done"
    events = [json.loads(line) for line in captured.getvalue().splitlines()]
    mine = [e for e in events if e["logger"] == "zipscore.test"]
    assert len(mine) == 1
    assert mine[0]["message"] == "inside a task"
    assert mine[0]["task_id"] == "task-123"
    assert mine[0]["task_name"] == "tests.log_something"
    assert mine[0]["level"] == "WARNING"


def test_outside_a_task_the_fields_are_dashes(captured: io.StringIO) -> None:
    log_setup.configure(logging.INFO, "json", captured)
    logging.getLogger("zipscore.test").info("plain")
    event = json.loads(captured.getvalue().splitlines()[-1])
    assert (event["task_id"], event["task_name"]) == ("-", "-")


def test_text_format_is_one_line_with_the_task_context(captured: io.StringIO) -> None:
    log_setup.configure(logging.INFO, "text", captured)
    log_something.apply(task_id="task-456")
    line = next(x for x in captured.getvalue().splitlines() if "inside a task" in x)
    assert "[tests.log_something task-456]" in line


def test_exceptions_stay_on_one_json_line(captured: io.StringIO) -> None:
    log_setup.configure(logging.INFO, "json", captured)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("zipscore.test").exception("failed")
    lines = captured.getvalue().splitlines()
    assert len(lines) == 1
    assert "ValueError: boom" in json.loads(lines[0])["exc_info"]


def test_the_level_filters(captured: io.StringIO) -> None:
    log_setup.configure(logging.WARNING, "text", captured)
    logging.getLogger("zipscore.test").info("hidden")
    assert captured.getvalue() == ""
