"""The issue's user story, as a user types it: console script against a real worker process."""

from __future__ import annotations

import json

import pytest

from tests.support.console import console

pytestmark = pytest.mark.usefixtures("worker_process")


def test_lookup_prints_the_factor(e2e_env: dict[str, str]) -> None:
    done = console("lookup", "9000", env=e2e_env)
    assert (done.returncode, done.stdout, done.stderr) == (0, "B\n", "")


def test_lookup_json(e2e_env: dict[str, str]) -> None:
    done = console("lookup", "9000", "--json", env=e2e_env)
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"zipcode": 9000, "risk_factor": "B", "exists": True}


def test_lookup_out_of_range(e2e_env: dict[str, str]) -> None:
    done = console("lookup", "999", env=e2e_env)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("zipscore: ZIPCODE_NOT_VALID")
    assert done.stderr.count("\n") == 1


def test_zipcodes_by_factor(e2e_env: dict[str, str]) -> None:
    done = console("zipcodes", "--risk-factor", "A", "--json", env=e2e_env)
    answer = json.loads(done.stdout)
    assert done.returncode == 0
    assert answer["risk_factor"] == "A"
    assert answer["count"] == len(answer["zipcodes"]) > 0


def test_injection_is_refused(e2e_env: dict[str, str]) -> None:
    done = console("zipcodes", "--risk-factor", "A' OR '1'='1", env=e2e_env)
    assert done.returncode == 2
    assert "RISK_FACTOR_NOT_VALID" in done.stderr


def test_load_zipcodes_and_doctor(e2e_env: dict[str, str], tmp_path: object) -> None:
    done = console("doctor", "--json", env=e2e_env)
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["ok"] is True
    done = console("db", "migrate", "--json", env=e2e_env)
    assert (done.returncode, json.loads(done.stdout)) == (0, {"applied": []})
    done = console(
        "db",
        "load-zipcodes",
        "ops/sample_data/risk-table.sample.csv",
        "--if-empty",
        "--json",
        env=e2e_env,
    )
    assert done.returncode == 0
    assert json.loads(done.stdout)["loaded"] is False
