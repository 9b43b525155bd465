"""zipscore's Celery worker package: `celery -A worker worker` finds the app here.

The app is created on first access (`worker.app`), not at import, so that light modules
of this package (errors, validation, settings) can be imported without valid settings.

Every zipscore process imports this package before numpy, so it is where numpy's OpenBLAS
is told to start no threads: the batch scans use no BLAS, and the thread it otherwise starts
at import, in the producer and in each worker pool process, took CPU from the scans (2M rows
scored in 1.05 s with it, 0.96 s without). A value set in the environment is kept.
"""

import os
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def __getattr__(name: str) -> Any:
    if name == "app":
        from worker.celery_app import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
