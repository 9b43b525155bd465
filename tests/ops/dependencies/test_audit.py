"""The dependency audit says plainly when nothing was audited, and fails on a finding."""

from __future__ import annotations

from typing import Any

import pytest

from ops.audit_dependencies import summarise


def test_an_unreachable_advisory_database_is_said_plainly_and_passes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    skipped = [{"name": n, "skip_reason": "could not be audited"} for n in ("celery", "redis")]
    assert summarise(skipped) == 0
    assert "NOTHING AUDITED" in capsys.readouterr().out


def test_a_known_vulnerability_fails_the_audit_and_is_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    found: list[dict[str, Any]] = [
        {"name": "celery", "version": "5.7.0", "vulns": []},
        {"name": "redis", "version": "8.1.0", "vulns": [{"id": "PYSEC-0000-1"}]},
    ]
    assert summarise(found) == 1
    out = capsys.readouterr().out
    assert "redis 8.1.0: PYSEC-0000-1" in out
    assert "NOTHING AUDITED" not in out
    assert "2 audited, 1 with known vulnerabilities" in out
