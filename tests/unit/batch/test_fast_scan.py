"""The producer's array scans agree with the exact ones, or say that they cannot tell."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from producer.batch import cutting, fast_scan, scan
from producer.batch.cutting import RowTooLong
from producer.batch.prescan import inspect_input
from worker.contract.csv_rows import (
    BYTE_MARKS,
    FIELD_START,
    IN_FIELD,
    IN_QUOTES,
    QUOTE_IN_QUOTES,
    quote_state,
)
from worker.contract.errors import ZipscoreError

PIECES = [
    b"a",
    b"b c",
    b",",
    b"\n",
    b"\r\n",
    b'"',
    b'""',
    b'"x,y"',
    b'"p\nq"',
    b"9000",
    "é".encode(),
]
CSV_BYTES = st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join)
STATES = st.sampled_from([FIELD_START, IN_FIELD, IN_QUOTES, QUOTE_IN_QUOTES])


@settings(max_examples=600, deadline=None)
@given(CSV_BYTES, STATES)
@example(b'a,"b', FIELD_START)
@example(b'"', IN_QUOTES)
def test_block_state_is_quote_states_answer(block: bytes, state: int) -> None:
    fast = fast_scan.block_state(block, state)
    if fast is not None:
        assert fast == quote_state(block, 0, len(block), state, BYTE_MARKS)


def exact_cut(buf: bytes, lines: int, monkeypatch: pytest.MonkeyPatch) -> int | None:
    with monkeypatch.context() as patch:
        patch.setattr(fast_scan, "cut", lambda *_: fast_scan.UNKNOWN)
        return cutting.cut(buf, lines)


@settings(max_examples=600, deadline=None)
@given(CSV_BYTES, st.integers(1, 6))
@example(b'a,"x\ny"\nb\n', 1)
def test_cut_is_the_exact_cut(buf: bytes, lines: int) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        expected = exact_cut(buf, lines, monkeypatch)
    fast = fast_scan.cut(buf, lines)
    if fast != fast_scan.UNKNOWN:
        assert fast == expected
        assert cutting.cut(buf, lines) == expected


def exact_long_row(data: bytes, max_bytes: int) -> int | None:
    try:
        scan.measure_rows(io.BytesIO(data), 0, len(data), max_bytes)
    except RowTooLong as exc:
        return exc.start
    return None


def metered(data: bytes, max_bytes: int, block: int) -> int | None:
    """The meter's answer when `data` is read in blocks of `block` bytes, as the check does."""
    meter, state = fast_scan.RowMeter(0, max_bytes), FIELD_START
    for offset in range(0, len(data), block):
        piece = data[offset : offset + block]
        fast = meter.block(piece, offset, state)
        state = quote_state(piece, 0, len(piece), state, BYTE_MARKS) if fast is None else fast
    meter.end(len(data))
    return meter.first_long_row()


@settings(max_examples=600, deadline=None)
@given(CSV_BYTES, st.integers(1, 20), st.integers(1, 16))
@example(b'"a\nb"\nx\n', 3, 4)
@example(b"a", 1, 1)
def test_the_row_meter_finds_the_exact_measures_row(
    data: bytes, max_bytes: int, block: int
) -> None:
    found = metered(data, max_bytes, block)
    if found != fast_scan.UNKNOWN:
        assert found == exact_long_row(data, max_bytes)


def test_what_only_the_exact_scan_can_tell() -> None:
    stray = b'1,5" disk,9000\n2,x,9000\n'
    assert fast_scan.block_state(stray, FIELD_START) is None
    assert fast_scan.block_state(b'""', QUOTE_IN_QUOTES) is None  # a state it does not model
    assert fast_scan.block_state(b'"a', IN_FIELD) is None  # a quote that is text
    assert fast_scan.cut(stray, 1) == fast_scan.UNKNOWN
    assert metered(stray, 100, 8) == fast_scan.UNKNOWN


def test_quoted_rows_are_scanned_without_the_exact_scan() -> None:
    data = b'C1,"Maes, Jan",9000,1.00\nC2,"Els ""E"" P",1000,2\r\nC3,"a\nb",x,3\n'
    assert fast_scan.block_state(data, FIELD_START) == FIELD_START
    assert fast_scan.cut(data, 1) == data.index(b"C2")
    assert fast_scan.cut(data, 3) == len(data)  # the third line ends inside quotes
    assert fast_scan.cut(data, 4) == len(data)
    assert fast_scan.cut(data, 5) is None
    for block in (4, 16, 1000):
        assert metered(data, 30, block) is None
        assert metered(data, 20, block) == 0


@pytest.mark.parametrize(
    ("body", "ok"), [("aé,1\nb,2\n".encode(), True), (b"a\xc3,1\nb,2\n", False)]
)
def test_a_character_cut_by_a_block_boundary_is_still_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: bytes, ok: bool
) -> None:
    """An ASCII block skips the UTF-8 decoder only when no character is left unfinished."""
    monkeypatch.setattr(scan, "SCAN_BLOCK", 2)  # "a\xc3" and then ",1": ASCII
    path = tmp_path / "in.csv"
    path.write_bytes(b"name,zipcode\n" + body)
    if ok:
        assert inspect_input(path, "zipcode").lines == 2
    else:
        with pytest.raises(ZipscoreError, match="not UTF-8"):
            inspect_input(path, "zipcode")
