"""Refused input is quoted in errors only through `worker.contract.errors.echo` (at most 40
characters, as the README promises), and no error message outgrows MAX_MESSAGE: a 900 kB
CSV header or a 100 MB risk-table line comes back as a short line."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.batch.prescan import inspect_input
from worker.contract.errors import MAX_ECHO, MAX_MESSAGE, ErrorCode, ZipscoreError, echo
from worker.database.admin import load_zipcodes
from worker.lookups.risk_table import MAX_LINE_CHARS, read_lines

MB = 1024 * 1024


@given(st.one_of(st.text(), st.binary(), st.integers(), st.lists(st.text()), st.none()))
def test_an_echo_is_the_repr_or_its_first_37_characters_and_dots(value: object) -> None:
    full = repr(value)
    shown = echo(value)
    assert len(shown) <= MAX_ECHO
    if len(full) <= MAX_ECHO and not isinstance(value, list):
        assert shown == full


HUGE: dict[str, Callable[[], object]] = {
    "str": lambda: "x" * (100 * MB),
    "bytes": lambda: b"y" * (100 * MB),
    "int": lambda: 10**4299,
    "int-beyond-repr": lambda: 10**5000,
    "list": lambda: ["z" * MB] * 1000,
}


@pytest.mark.parametrize("kind", sorted(HUGE))
def test_a_huge_value_is_echoed_short_and_at_once(kind: str) -> None:
    value = HUGE[kind]()  # made here: parameters live for the whole session
    started = time.perf_counter()
    shown = echo(value)
    assert time.perf_counter() - started < 0.05  # never a repr of the whole value
    assert len(shown) <= MAX_ECHO


def test_no_error_message_outgrows_the_cap() -> None:
    error = ZipscoreError(ErrorCode.BAD_INPUT_FILE, "x" * (10 * MB))
    assert len(error.message) == len(str(error)) == MAX_MESSAGE
    assert error.message.endswith("...")
    back = ZipscoreError.from_json({"error": {"code": "TIMEOUT", "message": "y" * MB}})
    assert len(back.message) == MAX_MESSAGE


def test_a_900_kb_header_is_echoed_as_a_short_line(tmp_path: Path) -> None:
    path = tmp_path / "wide.csv"
    columns = [letter * 75_000 for letter in "abcdefghijkl"]  # 12 x 75 kB: 900 kB
    path.write_text(",".join(columns) + "\n" + ",".join("1" * 12) + "\n")
    with pytest.raises(ZipscoreError) as caught:
        inspect_input(path, "zipcode")
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE
    assert "no column 'zipcode' in the header (columns: 'aaaa" in caught.value.message
    assert len(caught.value.message) < 1000  # was 900,168 characters


def test_an_absurd_zipcode_column_name_is_echoed_short(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("zipcode,zipcode\n1000,1000\n")
    with pytest.raises(ZipscoreError) as caught:
        inspect_input(path, "q" * MB)
    assert len(caught.value.message) < 1000


def write_table_with_a_huge_line(path: Path, megabytes: int) -> None:
    with path.open("w") as out:
        out.write("1000,")
        for _ in range(megabytes):
            out.write("A" * MB)
        out.write("\n1001,B\n")


@pytest.mark.budget(rss_mb=40)
def test_a_50_mb_table_line_is_refused_without_being_held(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    write_table_with_a_huge_line(path, 50)  # under ZIPSCORE_TABLE_MAX_MB, which refuses more
    with pytest.raises(ZipscoreError) as caught:
        load_zipcodes(path)
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE
    assert caught.value.message == (
        f"risk table refused: line 1: longer than {MAX_LINE_CHARS} characters"
    )


@pytest.mark.budget(rss_mb=40)
def test_a_50_mb_table_of_short_lines_is_refused_after_max_lines(tmp_path: Path) -> None:
    """100 MB of them was held as 15 million rules and problems: 4.5 GB and 82 s."""
    path = tmp_path / "table.csv"
    with path.open("w") as out:
        for _ in range(50):  # under ZIPSCORE_TABLE_MAX_MB, which refuses more
            out.write("1000,A\n" * (MB // 7))
    with pytest.raises(ZipscoreError) as caught:
        load_zipcodes(path)
    assert caught.value.message == (
        "risk table refused: more than 100000 lines (a table has at most 9000 rules)"
    )


def test_a_long_factor_is_echoed_short() -> None:
    from worker.lookups.risk_table import RiskTableError, parse_text

    with pytest.raises(RiskTableError) as caught:
        parse_text("1000," + "A" * 900 + "\n")
    assert caught.value.message.endswith("unknown risk factor '" + "A" * 36 + "...")


LINE_TEXT = st.lists(
    st.sampled_from(
        ["a", " ", "1", ",", "\ufeff", *"\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029", "\r\n"]
    ),
    max_size=300,
).map("".join)


@given(LINE_TEXT, st.integers(1, 30), st.integers(1, 40))
def test_lines_are_cut_exactly_as_splitlines_cuts_them(text: str, limit: int, block: int) -> None:
    """Whatever the block boundaries ("\\r" | "\\n" split included): splitlines' lines,
    each longer one cut to limit + 1 characters."""
    got = list(read_lines(io.StringIO(text, newline=""), limit=limit, block=block))
    assert got == [line[: limit + 1] for line in text.splitlines()]
