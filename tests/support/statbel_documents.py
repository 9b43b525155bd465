"""Health index documents for tests: the recorded-shape fixture and builders for variants."""

from __future__ import annotations

import json
from typing import Any

from tests.support.paths import FIXTURES

FIXTURE = FIXTURES / "bestat-health-index.json"
PUBLISHED_SEPTEMBER_2021 = {1996: 154.29, 2004: 135.61, 2013: 112.29}
FIXTURE_MONTHS = 12  # months of supported base years in the fixture (base 1988 ignored)
LATEST_2025 = {"period": "2026-03", "index": 101.05}


def fixture_body() -> bytes:
    return FIXTURE.read_bytes()


def fact(
    base_year: int = 2004, value: Any = 135.61, month: Any = "September 2021", **extra: Any
) -> dict[str, Any]:
    return {"Base year": f"{base_year} = 100", "Health index": value, "Month": month, **extra}


def document(*facts: dict[str, Any]) -> bytes:
    return json.dumps({"facts": list(facts)}).encode()


def with_value(base_year: int, month: str, value: float) -> bytes:
    """The fixture with one value changed (a revision by Statbel)."""
    raw = json.loads(FIXTURE.read_text())
    for item in raw["facts"]:
        if item["Base year"] == f"{base_year} = 100" and item["Month"] == month:
            item["Health index"] = value
    return json.dumps(raw).encode()
