"""This test run's own database name and Redis key prefix.

tests/conftest.py puts them in the environment before any zipscore module reads its
settings; tests that start processes or build URLs of their own read them here.
"""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

RUN_ID = uuid.uuid4().hex[:10]
ADMIN_DATABASE_URL = os.environ.get(
    "ZIPSCORE_TEST_ADMIN_DATABASE_URL",
    os.environ.get("ZIPSCORE_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
TEST_DATABASE = f"zipscore_test_{RUN_ID}"
TEST_DATABASE_URL = urlunsplit(urlsplit(ADMIN_DATABASE_URL)._replace(path=f"/{TEST_DATABASE}"))
TEST_PREFIX = f"zipscore-test-{RUN_ID}"
# The end-to-end tier's worker processes: a prefix of their own, so the embedded worker of
# the integration tier never takes their messages.
E2E_PREFIX = f"{TEST_PREFIX}-e2e"
