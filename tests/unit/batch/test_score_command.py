"""`zipscore score` and `zipscore job status` over an in-process batch."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli import main as cli
from tests.support.portfolios import portfolio


@pytest.mark.usefixtures("eager")
def test_cli_score_json_and_job_status(runner: CliRunner, tmp_path: Path) -> None:
    import json

    source = portfolio(tmp_path / "in.csv", 12)
    done = runner.invoke(cli.cli, ["score", str(source), "-o", str(tmp_path / "o.csv"), "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert set(summary) == {
        "job_id", "rows", "ok", "unknown", "invalid", "seconds", "rows_per_second", "output",
    }  # fmt: skip
    assert summary["rows"] == 12
    assert "rows" in done.stderr  # the plain progress line (not a terminal)
    status = runner.invoke(cli.cli, ["job", "status", summary["job_id"], "--json"])
    assert json.loads(status.stdout)["state"] == "done"
    human = runner.invoke(cli.cli, ["job", "status", summary["job_id"]])
    assert human.stdout.startswith(f"job {summary['job_id']}: done, 12 rows")


@pytest.mark.usefixtures("eager")
def test_cli_refuses_a_bad_file_with_exit_2_and_one_line(runner: CliRunner, tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"\x00\x01binary")
    done = runner.invoke(cli.cli, ["score", str(source), "-o", str(tmp_path / "o.csv")])
    assert done.exit_code == 2
    assert done.stderr.startswith("zipscore: BAD_INPUT_FILE: ")
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [["score"], ["score", "in.csv"], ["score", "in.csv", "-o", "o.csv", "--resume", "ab12cd34"]],
)
def test_cli_score_usage_errors(runner: CliRunner, args: list[str]) -> None:
    done = runner.invoke(cli.cli, args)
    assert done.exit_code == 2
