"""Checks on the in-process CLI's result (click's `Result`), shared by the tiers.

Every command ends by its own exit status and says a refusal in one line on stderr,
`zipscore: CODE: ...`, with the JSON error on stdout under `--json`.
"""

from __future__ import annotations

import json

from click.testing import Result

from worker.contract.errors import ErrorCode


def assert_no_crash(result: Result) -> None:
    """The command ended by its own exit status, and nothing but one-line answers was printed."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert "Traceback" not in result.stdout + result.stderr


def assert_one_line_error(result: Result, code: ErrorCode, as_json: bool) -> None:
    assert result.stderr.startswith(f"zipscore: {code.value}: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    if as_json:
        assert json.loads(result.stdout)["error"]["code"] == code.value
