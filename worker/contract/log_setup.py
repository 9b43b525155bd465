"""Logging for every zipscore process: one line per event, JSON when ZIPSCORE_LOG_FORMAT=json.

Each line carries the Celery task id and name when it is written inside a task, so one
request can be followed from the producer (which logs the id it sent) through the worker.
Celery calls `configure` through its `setup_logging` signal, so it does not install its
own handlers; the CLI and scripts call `configure` themselves.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from celery import current_task
from celery.signals import setup_logging

from worker.contract.settings import get_settings

TEXT_FORMAT = (
    "%(asctime)s %(levelname)s %(processName)s %(name)s [%(task_name)s %(task_id)s] %(message)s"
)


class TaskContext(logging.Filter):
    """Adds `task_id` and `task_name` ("-" outside a task) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        task_id = task_name = "-"
        if current_task:
            task_id = current_task.request.id or "-"
            task_name = current_task.name or "-"
        record.task_id, record.task_name = task_id, task_name
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line; exceptions as text in `exc_info`."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "process": record.processName,
            "task_id": getattr(record, "task_id", "-"),
            "task_name": getattr(record, "task_name", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(event, default=str)


def configure(
    level: int | str = logging.INFO, log_format: str | None = None, stream: TextIO | None = None
) -> None:
    """Route every logger to one handler (stderr by default) in the chosen format."""
    chosen = log_format or get_settings().log_format
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(TaskContext())
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


@setup_logging.connect
def _celery_setup_logging(loglevel: int | str | None = None, **_: Any) -> None:
    configure(loglevel or logging.INFO)
