"""`zipscore db load-zipcodes FILE` reads at most ZIPSCORE_TABLE_MAX_MB of FILE."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from producer.cli import main as cli
from tests.support.cli_results import assert_no_crash, assert_one_line_error
from worker.contract.errors import ErrorCode
from worker.contract.settings import get_settings


@pytest.fixture
def table_cap_1_mb(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ZIPSCORE_TABLE_MAX_MB", "1")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("table_cap_1_mb")
@pytest.mark.parametrize("name", ["/dev/zero", "{tmp}/huge.csv"])
def test_a_risk_table_file_over_the_cap_is_refused_without_reading_it_all(
    tmp_path: Path, name: str
) -> None:
    """`db load-zipcodes /dev/zero` read until MemoryError."""
    huge = tmp_path / "huge.csv"
    with huge.open("wb") as f:
        f.write(b"1000-1999,A\n" * 100_000)  # 1.2 MB of valid rules
    result = CliRunner().invoke(
        cli.cli, ["db", "load-zipcodes", name.format(tmp=tmp_path), "--json"]
    )
    assert_no_crash(result)
    assert result.exit_code == 2
    assert_one_line_error(result, ErrorCode.BAD_INPUT_FILE, as_json=True)
    assert "larger than 1 MB (ZIPSCORE_TABLE_MAX_MB)" in result.stderr
