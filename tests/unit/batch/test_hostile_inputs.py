"""Hostile batch input files (`zipscore score IN.csv -o OUT.csv`): any bytes are refused up
front with one line, or scored row for row.
"""

from __future__ import annotations

import csv
import json
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import event, example, given
from hypothesis import strategies as st

from producer.cli import main as cli
from producer.client import Client
from tests.support.batch_jobs import Sent
from tests.support.cli_results import assert_no_crash, assert_one_line_error
from tests.support.fakes import DictZipcodeStore
from tests.support.hostile import BOM, FUZZ, JUNK, corrupt, invoke
from worker.batch.scoring import split_rows
from worker.contract.batch_output import OUTPUT_COLUMNS
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode
from worker.contract.result_cache import ResultCache
from worker.contract.settings import Settings


@pytest.fixture
def batch_runner(
    eager: Sent,
    cache: ResultCache,
    batch_store: BatchStore,
    monkeypatch: pytest.MonkeyPatch,
    make_settings: Callable[..., Settings],
) -> CliRunner:
    """`zipscore score` in-process: eager tasks, fakeredis, the dict table."""
    overrides: dict[str, Any] = {"batch_chunk_deadline_seconds": 0.3, "batch_poll_seconds": 0.01}
    client = Client(
        make_settings(**overrides),
        cache=cache,
        batch_store=batch_store,
        timeout=1.0,
    )
    monkeypatch.setattr(cli, "make_client", lambda: client)
    return CliRunner()


GOOD_HEADERS = st.sampled_from(
    [
        "zipcode", "policy,zipcode,note", "id, ZipCode ,x", '"zip,code",zipcode', '"zipcode"',
        '"zip\ncode",zipcode,x', 'a"b,zipcode', "zipcode,",
    ]
)  # fmt: skip


BAD_HEADERS = st.sampled_from(["zipcode,zipcode", "id,zip", "", '"zipcode', "zip\x00code"])


# Fields that never make a file refused (a lone CR, a stray quote, digits of other scripts...)
FIELDS = st.sampled_from(
    [
        "9000", "1501", "9170", " 9240", "1000", "1315", "", "abc", "999", "0900", "01000",
        "10000", "٩٠٠٠", "9" * 5000, '"9000"', '"a,b"', '"a\nb"', '"a\r\n"', '"a""b"',
        '5" disk', '"x"y', '""', "\r", "é", "\u2028", " ",
    ]
)  # fmt: skip


ODD_FIELDS = st.text(alphabet='09,"\r\n a\x00é', max_size=6)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    """Bytes near a batch input: a header, rows of odd fields, odd line endings, junk bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=120))
    header = draw(GOOD_HEADERS if draw(st.integers(0, 5)) else BAD_HEADERS)
    fields = FIELDS if draw(st.integers(0, 3)) else FIELDS | ODD_FIELDS
    rows = draw(st.lists(st.lists(fields, min_size=1, max_size=4), max_size=8))
    endings = st.sampled_from(["\n", "\r\n", "\n", "\r\n", "\r"])
    text = (BOM if draw(st.booleans()) else "") + header
    for row in rows:
        text += draw(endings) + ",".join(row)
    if draw(st.booleans()):
        text += draw(endings)
    data = text.encode("utf-8")
    if draw(st.integers(0, 7)) == 0:
        data = corrupt(data, draw(JUNK), draw(st.integers(0, 10_000)))
    return data


def plainly_fine(content: bytes) -> bool:
    """A file no one may refuse: UTF-8, no NUL, no quote, one `zipcode` column in its header."""
    try:
        text = content.decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError:
        return False
    header = text.split("\n", 1)[0].removesuffix("\r")
    if "\x00" in text or '"' in text or "\r" in header:
        return False
    return [field.strip().casefold() for field in header.split(",")].count("zipcode") == 1


VALID_ZIPCODES = frozenset(str(zipcode) for zipcode in range(1000, 10_000))


SUFFIX = re.compile(r",(?P<factor>[ABC]?),(?P<status>ok|unknown|invalid),(?P<error>[^,\"\r\n]*)")


def expected_status(row: str, column: int, columns: int, table: dict[int, str]) -> str | None:
    """The status of a row without quotes (the contract's rules), None for quoted rows."""
    if '"' in row:
        return None
    fields = row.split(",")
    if len(fields) != columns:
        return "invalid"
    value = fields[column].strip()
    if value not in VALID_ZIPCODES:
        return "invalid"
    return "ok" if int(value) in table else "unknown"


def check_scored(content: bytes, output: bytes, store: DictZipcodeStore) -> int:
    """The output holds one row per input record, in order, each the input's own text with
    a well-formed suffix; returns the number of records."""
    text = content.decode("utf-8")
    bom = text.startswith(BOM)
    records = split_rows(text.removeprefix(BOM))
    header, rows = records[0], records[1:]
    out_text = output.decode("utf-8")
    assert out_text.startswith(BOM) == bom
    scored = split_rows(out_text.removeprefix(BOM))
    assert scored[0] == header + "," + ",".join(OUTPUT_COLUMNS)
    assert len(scored) == len(records)
    fields = next(csv.reader([header]))
    names = [name.strip().casefold() for name in fields]
    column = fields.index("zipcode") if "zipcode" in fields else names.index("zipcode")
    for row, out in zip(rows, scored[1:], strict=True):
        assert out.startswith(row), (row, out)
        suffix = SUFFIX.fullmatch(out[len(row) :])
        assert suffix is not None, (row, out)
        assert bool(suffix["factor"]) == (suffix["status"] == "ok"), out
        assert bool(suffix["error"]) == (suffix["status"] == "invalid"), out
        status = expected_status(row, column, len(fields), store.table)
        assert status in (None, suffix["status"]), (row, out)
        if suffix["status"] == "ok" and status is not None:
            zipcode = int(row.split(",")[column])
            assert suffix["factor"] == store.table[zipcode], (row, out)
    return len(rows)


@FUZZ
@given(content=csv_files(), chunk_size=st.integers(1, 3), as_json=st.booleans())
@example(content=b"zipcode\n", chunk_size=1, as_json=False)  # was a ZeroDivisionError
@example(content=b"\xef\xbb\xbfid,zipcode", chunk_size=2, as_json=True)
@example(content=b"zipcode\n9000\r\n1501\n", chunk_size=1, as_json=True)
@example(content=b'zipcode\r\n"1000"\r\n9000\r', chunk_size=1, as_json=False)  # CR kept
@example(content=b'id,zipcode\n1,"9000\n2,1000\n"\n', chunk_size=1, as_json=False)
def test_any_batch_input_is_refused_up_front_or_scored_row_for_row(
    batch_runner: CliRunner,
    eager: Sent,
    batch_store: BatchStore,
    store: DictZipcodeStore,
    content: bytes,
    chunk_size: int,
    as_json: bool,
) -> None:
    keys_before = set(batch_store.redis.keys())
    sent_before = len(eager)
    with tempfile.TemporaryDirectory() as tmp:
        source, output = Path(tmp) / "in.csv", Path(tmp) / "out.csv"
        source.write_bytes(content)
        result = invoke(
            batch_runner,
            "score", str(source), "-o", str(output), "--chunk-size", str(chunk_size),
            *(["--json"] if as_json else []),
        )  # fmt: skip
        assert_no_crash(result)
        event(f"exit status {result.exit_code}")
        if result.exit_code == 2:
            assert_one_line_error(result, ErrorCode.BAD_INPUT_FILE, as_json)
            assert not plainly_fine(content), result.stderr
            assert eager[sent_before:] == []  # no task, so no job and no table pinned
            assert set(batch_store.redis.keys()) == keys_before
            assert not output.exists()
            return
        assert result.exit_code == 0, result.output
        rows = check_scored(content, output.read_bytes(), store)
    redis = batch_store.redis
    assert [*redis.scan_iter(match="*:input:*"), *redis.scan_iter(match="*:chunk:*")] == []
    if as_json:
        summary = json.loads(result.stdout)
        assert summary["rows"] == rows == summary["ok"] + summary["unknown"] + summary["invalid"]


def test_a_file_with_a_header_and_no_rows_is_a_finished_job(
    batch_runner: CliRunner, tmp_path: Path
) -> None:
    """Its progress line divided by its 0 lines: the command crashed after writing the
    output, and the crash marked the finished job `interrupted`."""
    source = tmp_path / "in.csv"
    source.write_bytes(b"policy,zipcode\r\n")
    result = invoke(batch_runner, "score", str(source), "-o", str(tmp_path / "out.csv"), "--json")
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    assert "zipscore: job " in result.stderr  # the progress line, without a share of 0 lines
    assert (tmp_path / "out.csv").read_bytes() == b"policy,zipcode,risk_factor,status,error\r\n"
    job = json.loads(result.stdout)["job_id"]
    status = json.loads(invoke(batch_runner, "job", "status", job, "--json").stdout)
    assert (status["state"], status["rows"]) == ("done", 0)
