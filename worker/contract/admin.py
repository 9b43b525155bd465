"""The database administration the CLI calls, and how the CLI finds it.

`zipscore db migrate`, `zipscore db load-zipcodes`, `zipscore index remove-month` and
`zipscore doctor` run code that lives with the database (worker/database/admin.py) and
needs the worker's driver. The CLI never imports it: the package declares it under the
`zipscore.admin` entry point, and an install without the `worker` extra says what to add.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, cast

from worker.contract.errors import ErrorCode, ZipscoreError

ENTRY_POINT_GROUP = "zipscore.admin"
WORKER_EXTRA_HINT = "install the worker extra: pip install 'zipscore[worker]'"


class DatabaseAdmin(Protocol):
    """What the database administration offers the CLI."""

    def migrate(self) -> list[int]: ...

    def load_zipcodes(self, path: Path, *, if_empty: bool = False) -> dict[str, Any]: ...

    def remove_index_month(self, base_year: object, month: object) -> dict[str, Any]: ...

    def doctor(self) -> dict[str, Any]: ...


def database_admin() -> DatabaseAdmin:
    """The installed database administration.

    Raises:
        ZipscoreError: BACKEND_UNAVAILABLE when it is not installed (no `worker` extra).
    """
    from importlib.metadata import entry_points  # 12 ms at import, for db commands only

    found = entry_points(group=ENTRY_POINT_GROUP, name="database")
    for entry in found:
        try:
            return cast(DatabaseAdmin, entry.load())
        except ImportError as exc:
            raise ZipscoreError(
                ErrorCode.BACKEND_UNAVAILABLE,
                f"database administration needs {exc.name or 'the database driver'}: "
                f"{WORKER_EXTRA_HINT}",
            ) from None
    raise ZipscoreError(
        ErrorCode.BACKEND_UNAVAILABLE,
        f"no database administration is installed: {WORKER_EXTRA_HINT}",
    )
