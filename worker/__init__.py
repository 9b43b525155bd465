"""zipscore's Celery worker package: `celery -A worker worker` finds the app here.

The app is created on first access (`worker.app`), not at import, so that light modules
of this package (errors, validation, settings) can be imported without valid settings.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "app":
        from worker.celery_app import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
