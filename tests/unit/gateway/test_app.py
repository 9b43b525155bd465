"""Fuzzing the gateway from its own OpenAPI schema (schemathesis): every operation, inputs
generated from the schema and beyond it, answers as documented and never with a 5xx other
than the documented 503 and 504, without API keys and with them (the schema then documents
401 and 429; the calls carry a key). Bounded (a few examples an operation) to keep the
suite fast.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from producer.client import Client
from producer.gateway import app as gateway
from producer.gateway.jobs import BatchLauncher
from tests.support.gateway import Sent, answer_pings

DOCUMENTED_SERVER_ERRORS = {503, 504}
KEY = "fuzz-0123456789abcdef"


@schemathesis.serializer("text/csv")
def _csv(ctx: Any, value: Any) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else str(value).encode("utf-8")


@schemathesis.check
def no_undocumented_server_error(ctx: Any, response: Any, case: Any) -> bool | None:
    """A 5xx is a bug unless it is a documented 503 (backend, index) or 504 (timeout)."""
    status = int(response.status_code)
    assert status < 500 or status in DOCUMENTED_SERVER_ERRORS, (
        f"{case.method} {case.path}: {status}"
    )
    return None


@schemathesis.check
def no_server_path(ctx: Any, response: Any, case: Any) -> bool | None:
    """No answer names the server's upload directory (or a file in it)."""
    for spelling in SERVER_PATHS:
        assert spelling not in response.text, f"{case.method} {case.path}: shows {spelling}"
    return None


SERVER_PATHS: list[str] = []  # the upload directory of the app under test, set per test

# The operations, read once from the schema (building the app does no I/O).
OPERATIONS = [
    (path, method.upper())
    for path, item in gateway.create_app().openapi()["paths"].items()
    for method in item
]


@pytest.fixture
def pings_answered(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """/readyz's checks answer without Postgres or Redis. An eager `health.ping` would open
    the process's real Postgres pool against the integration tier's database, which does not
    exist yet: the pool would back off, and later hold up the session worker's first tasks."""
    answer_pings(client, monkeypatch)


@pytest.mark.usefixtures("pings_answered")
@pytest.mark.parametrize("keys", [False, True], ids=["open", "keyed"])
@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_the_gateway_answers_as_its_schema_says(
    client: Client,
    index_eager: Sent,
    path: str,
    method: str,
    keys: bool,
) -> None:
    configured = client.settings.model_copy(update={"gateway_api_keys": (KEY,) if keys else ()})
    headers = {"Authorization": f"Bearer {KEY}"} if keys else None
    launcher = BatchLauncher(client, configured.gateway_max_batches)
    app = gateway.create_app(configured, client=client, launcher=launcher)
    upload_dir = client.settings.gateway_upload_dir
    SERVER_PATHS[:] = sorted({str(upload_dir), str(upload_dir.resolve())})
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)[path][method]

    # Inputs from the schema, and beyond it (negative: wrong types, missing parameters).
    positive = operation.as_strategy()
    negative = operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)

    @given(case=st.one_of(positive, negative))
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(
            headers=headers,
            checks=[
                no_undocumented_server_error,
                no_server_path,
                status_code_conformance,
                content_type_conformance,
                response_schema_conformance,
            ],
        )

    answers_as_documented()
    # Batches accepted run on: let them end while the eager tasks are still in place, or
    # their chunks would go to the real broker of a later test's worker.
    assert launcher.wait_idle(30)
