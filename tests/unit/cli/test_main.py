"""The `zipscore` CLI: answers, JSON, exit statuses and one-line errors (no traceback)."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from producer.cli import main as cli
from worker.contract.errors import ErrorCode, ZipscoreError


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
        [sys.executable, "-m", "producer.cli.main", *args],
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


def test_verbose_says_cache_hit_when_no_task_was_sent(runner: CliRunner) -> None:
    invoke(runner, "lookup", "1315")  # warms the cache
    status, out, err = invoke(runner, "-v", "lookup", "1315")
    assert (status, out) == (0, "B\n")
    assert "cache hit lookup 1315: no task sent" in err
    assert "task_id=" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ("zipcodes", "--json"),  # a missing option
        ("zipcodes", "--risk-factr", "A", "--json"),  # a misspelt option
        ("lookup", "9000", "--jsn", "--json"),  # an extra argument
        ("frobnicate", "--json"),  # an unknown command
        ("score", "--chunk-size", "0", "--json"),  # a value outside its range
    ],
)
def test_console_usage_errors_are_one_line_with_the_usage_code(argv: tuple[str, ...]) -> None:
    done = _console(*argv)
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["code"] == "USAGE"
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("zipscore: USAGE: ")
    assert done.stderr.rstrip().endswith("--help)")


def test_zipscore_alone_shows_the_help_and_succeeds() -> None:
    done = _console()
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("Usage: zipscore")


def test_the_version_is_the_package_s() -> None:
    from importlib.metadata import version

    done = _console("--version")
    assert (done.returncode, done.stdout) == (0, f"zipscore {version('zipscore')}\n")


def test_the_command_list_shows_every_summary_whole() -> None:
    listing = _console("--help").stdout.split("Commands:", 1)[1]
    assert "..." not in listing
    assert {"db", "doctor", "index", "job", "lookup", "score", "serve", "zipcodes"} <= {
        line.split()[0] for line in listing.splitlines() if line.strip()
    }


def test_an_interrupted_command_exits_130(monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted() -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "make_client", interrupted)
    monkeypatch.setattr(sys, "argv", ["zipscore", "lookup", "9000"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 130


def test_the_console_script_freezes_what_it_leaves_for_a_quick_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console script (`run`) answers as `main` does, its objects frozen: the interpreter's
    last collection then skips them (0.1 s of a batch command, see `run`)."""
    frozen_before = gc.get_freeze_count()
    monkeypatch.setattr(sys, "argv", ["zipscore", "--version"])
    try:
        cli.run()
        assert capsys.readouterr().out.startswith("zipscore ")
        assert gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()


def test_the_gateway_address_has_environment_defaults(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[tuple[str, int]] = []
    monkeypatch.setattr(
        "producer.gateway.serve.serve", lambda host, port: served.append((host, port))
    )
    result = runner.invoke(
        cli.cli, ["serve"], env={"ZIPSCORE_GATEWAY_HOST": "::1", "ZIPSCORE_GATEWAY_PORT": "5050"}
    )
    assert result.exit_code == 0, result.output
    assert served == [("::1", 5050)]


def test_console_bad_settings_answer_json_when_asked() -> None:
    done = _console("lookup", "9000", "--json", env={"ZIPSCORE_LOOKUP_TIMEOUT": "-1"})
    assert done.returncode == 1
    assert json.loads(done.stdout)["error"]["code"] == "BACKEND_UNAVAILABLE"


@pytest.mark.parametrize(
    "argv",
    [("score", "-", "-o", "out.csv"), ("score", "in.csv", "-o", "-"), ("db", "load-zipcodes", "-")],
)
def test_dash_for_a_stream_is_refused_with_a_clear_usage_error(argv: tuple[str, ...]) -> None:
    done = _console(*argv)
    assert done.returncode == 2
    assert done.stderr.startswith("zipscore: USAGE: Invalid value")
    assert "'-' (standard input or output) is not accepted: give a file path" in done.stderr


def test_an_interrupted_batch_exits_130_with_its_resume_hint(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text("zipcode\n9000\n")

    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("producer.client.Client.score_file", interrupted)
    result = runner.invoke(cli.cli, ["score", str(source), "-o", str(tmp_path / "out.csv")])
    assert result.exit_code == 130
    assert "zipscore: interrupted" in result.output


def test_an_open_address_from_the_environment_is_refused_without_keys() -> None:
    """The guard judges the address click settled on, whichever way it was given."""
    env = {name: value for name, value in os.environ.items() if "API_KEYS" not in name}
    done = subprocess.run(
        [sys.executable, "-m", "producer.cli.main", "serve", "--port", "5987"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**env, "ZIPSCORE_GATEWAY_HOST": "0.0.0.0"},
    )
    assert done.returncode == 1
    assert "refusing to serve on '0.0.0.0'" in done.stderr
