"""Celery tasks of batches, on the `batch` queue: `batch.pin_table`, `batch.score_chunk`.

Thin wrappers (see worker/task_guard.py) over the plain code of worker/batch/chunks.py.
"""

from __future__ import annotations

from typing import Any

import worker.database.pool  # noqa: F401  (connects the signals that open each pool process's pool)
from worker import runtime
from worker.batch import chunks
from worker.celery_app import app
from worker.contract.errors import ErrorCode
from worker.task_guard import RETRY, answer, guarded


@app.task(name="batch.pin_table", **guarded(ErrorCode.BAD_INPUT_FILE), **RETRY)
def pin_table(version: object = None) -> dict[str, Any]:
    return answer(lambda: chunks.pin_table(runtime.store(), runtime.batch_store(), version))


@app.task(name="batch.score_chunk", **guarded(ErrorCode.BAD_INPUT_FILE), **RETRY)
def score_chunk(message: object) -> dict[str, Any]:
    return answer(lambda: chunks.score_message(runtime.batch_store(), message))
