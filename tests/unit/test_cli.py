"""The `zipscore` CLI: answers, JSON, exit statuses and one-line errors (no traceback)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from producer import cli
from worker.errors import ErrorCode, ZipscoreError


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    """Run through `main` (as the console script does) and return status, stdout, stderr."""
    result = runner.invoke(cli.cli, list(args), standalone_mode=True)
    return result.exit_code, result.stdout, result.stderr


def test_lookup_prints_the_factor(runner: CliRunner) -> None:
    assert invoke(runner, "lookup", "9000") == (0, "B\n", "")


def test_lookup_json(runner: CliRunner) -> None:
    status, out, _ = invoke(runner, "lookup", "9000", "--json")
    assert status == 0
    assert json.loads(out) == {"zipcode": 9000, "risk_factor": "B", "exists": True}


def test_unknown_zipcode_is_an_answer(runner: CliRunner) -> None:
    status, out, _ = invoke(runner, "lookup", "1501", "--json")
    assert status == 0
    assert json.loads(out) == {"zipcode": 1501, "risk_factor": None, "exists": False}


@pytest.mark.parametrize("arg", ["999", "10000", "abc", "-5", "9000.5", ""])
def test_bad_zipcode_exits_2_with_one_line(runner: CliRunner, arg: str) -> None:
    status, out, err = invoke(runner, "lookup", arg)
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("zipscore: ZIPCODE_NOT_VALID: ")


def test_bad_zipcode_json_error_body(runner: CliRunner) -> None:
    status, out, err = invoke(runner, "lookup", "999", "--json")
    assert status == 2
    assert json.loads(out)["error"]["code"] == "ZIPCODE_NOT_VALID"
    assert "ZIPCODE_NOT_VALID" in err


def test_zipcodes_json(runner: CliRunner) -> None:
    status, out, _ = invoke(runner, "zipcodes", "--risk-factor", "A", "--json")
    answer = json.loads(out)
    assert status == 0
    assert answer["risk_factor"] == "A"
    assert answer["count"] == len(answer["zipcodes"]) == 71


def test_zipcodes_injection_is_refused(
    runner: CliRunner, eager: list[tuple[str, tuple[Any, ...]]]
) -> None:
    status, _, err = invoke(runner, "zipcodes", "--risk-factor", "A' OR '1'='1")
    assert status == 2
    assert "RISK_FACTOR_NOT_VALID" in err
    assert eager == []


def test_backend_errors_exit_1(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    class Down:
        def lookup(self, zipcode: str) -> None:
            raise ZipscoreError(ErrorCode.TIMEOUT, "no answer within 1 s")

    monkeypatch.setattr(cli, "make_client", Down)
    status, _, err = invoke(runner, "lookup", "9000")
    assert (status, err) == (1, "zipscore: TIMEOUT: no answer within 1 s\n")


def test_load_zipcodes_refuses_a_bad_file_before_touching_the_database(
    runner: CliRunner, tmp_path: Path
) -> None:
    table = tmp_path / "bad.csv"
    table.write_text("1000 - 1010,C\n1005,B\n")
    status, out, err = invoke(runner, "db", "load-zipcodes", str(table), "--json")
    assert status == 2
    assert json.loads(out)["error"]["code"] == "BAD_INPUT_FILE"
    assert "line 2" in err


def test_load_zipcodes_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    status, _, err = invoke(runner, "db", "load-zipcodes", str(tmp_path / "nope.csv"))
    assert status == 2
    assert "BAD_INPUT_FILE" in err


def _console(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_console_refuses_bad_input_without_a_broker() -> None:
    done = _console("lookup", "999")
    assert done.returncode == 2
    assert done.stderr == "zipscore: ZIPCODE_NOT_VALID: zipcode 999 is outside 1000-9999\n"


def test_console_bad_settings_are_one_line_not_a_traceback() -> None:
    done = _console("lookup", "9000", env={"ZIPSCORE_LOOKUP_TIMEOUT": "-1"})
    assert done.returncode == 1
    assert done.stderr.startswith(
        "zipscore: BACKEND_UNAVAILABLE: invalid configuration: ZIPSCORE_LOOKUP_TIMEOUT"
    )
    assert "Traceback" not in done.stderr


def test_console_usage_errors_exit_2() -> None:
    done = _console("zipcodes")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_console_unreachable_broker_is_backend_unavailable() -> None:
    done = _console(
        "lookup",
        "9000",
        "--json",
        env={"ZIPSCORE_REDIS_URL": "redis://127.0.0.1:1/0", "ZIPSCORE_LOOKUP_TIMEOUT": "3"},
    )
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] in {"BACKEND_UNAVAILABLE", "TIMEOUT"}
    assert done.stderr.count("\n") == 1


def test_verbose_logs_the_task_id_sent(runner: CliRunner) -> None:
    status, out, err = invoke(runner, "-v", "lookup", "1315")
    assert (status, out) == (0, "B\n")
    assert "sent zipcodes.lookup task_id=" in err


def test_console_usage_errors_are_one_line_with_the_command_code() -> None:
    done = _console("zipcodes", "--json")
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["code"] == "RISK_FACTOR_NOT_VALID"
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("zipscore: RISK_FACTOR_NOT_VALID: Missing option")


def test_console_bad_settings_answer_json_when_asked() -> None:
    done = _console("lookup", "9000", "--json", env={"ZIPSCORE_LOOKUP_TIMEOUT": "-1"})
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "BACKEND_UNAVAILABLE"
