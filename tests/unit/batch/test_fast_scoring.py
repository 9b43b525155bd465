"""The vectorised chunk scoring gives the exact path's bytes, or declines (None)."""

from __future__ import annotations

import csv

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.fakes import SAMPLE_RULES
from worker.batch.fast_scoring import score_bytes
from worker.batch.scoring import ScoringTable, score_chunk
from worker.contract.batch_output import ScoredBytes
from worker.lookups.risk_table import expand


def sample_table() -> ScoringTable:
    return ScoringTable.from_pairs(7, dict(expand(SAMPLE_RULES)))


TABLE = sample_table()


def exact(data: bytes, column: int, columns: int, newline: str) -> ScoredBytes:
    result = score_chunk(
        data.decode("utf-8"), TABLE, column=column, columns=columns, newline=newline
    )
    text = result.text.encode("utf-8")
    return ScoredBytes(text, result.rows, result.ok, result.unknown, result.invalid)


def assert_same(data: bytes, column: int = 1, columns: int = 3, newline: str = "\n") -> bool:
    """The fast path's answer equals the exact one; True if it did not decline."""
    fast = score_bytes(data, TABLE, column=column, columns=columns, newline=newline)
    if fast is None:
        return False
    assert fast == exact(data, column, columns, newline)
    return True


# -- generated chunks ------------------------------------------------------------------------

ZIPCODES = ["9000", "1000", "9999", "1234", "0999", "999", "12345", "abc", "", " 9000", "9000 ",
            "1e3", "٩٠٠٠", "9\u00a0000", "\u20039000"]  # fmt: skip
TEXT = st.lists(
    st.sampled_from([*list('ab Z,"\n\r\x00é€\ufeff1'), "Maes, Jan", '""']), max_size=6
).map("".join)
PLAIN = st.text(alphabet=st.sampled_from(list("abc éZ-'.\ufeff")), max_size=8)


@st.composite
def fields(draw: st.DrawFn, zipcode: bool) -> str:
    value = draw(st.sampled_from(ZIPCODES)) if zipcode else draw(PLAIN)
    shape = draw(st.sampled_from(["plain", "plain", "quoted", "quoted_text", "junk", "stray"]))
    if shape == "plain":
        return value
    if shape == "quoted":  # RFC 4180 quoting: commas, quotes and line breaks inside
        inner = value + draw(TEXT)
        return '"' + inner.replace('"', '""') + '"'
    if shape == "quoted_text":  # a closed quoted field followed by text: malformed for csv
        return '"' + value.replace('"', '""') + '"' + draw(PLAIN)
    if shape == "stray":  # a `"` inside an unquoted field: literal text
        return value + '"' + draw(PLAIN)
    return draw(TEXT)


@st.composite
def chunks(draw: st.DrawFn) -> tuple[bytes, int, int]:
    columns = draw(st.integers(1, 4))
    column = draw(st.integers(0, columns - 1))
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        width = draw(st.sampled_from([columns, columns, columns, columns - 1, columns + 1]))
        row = ",".join(draw(fields(i == column)) for i in range(max(width, 0)))
        rows.append(row + draw(st.sampled_from(["\n", "\n", "\r\n", "\r\n", "\r", ""])))
    return "".join(rows).encode("utf-8"), column, columns


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(chunks(), st.sampled_from(["\n", "\r\n"]))
def test_generated_chunks_score_to_the_same_bytes(
    chunk: tuple[bytes, int, int], newline: str
) -> None:
    data, column, columns = chunk
    assert_same(data, column, columns, newline)


@settings(max_examples=800, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('9001a,"\n\r é')), max_size=60))
@example('a,"b\n"c,9000\n')
@example('"\n')
def test_any_text_scores_to_the_same_bytes_or_is_declined(text: str) -> None:
    assert_same(text.encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(['"Maes, Jan"', '"Els ""Els"" Peeters"', "Jan Maes", '"a\nb"', ""]),
            st.sampled_from(["9000", "1000", "4321", "abc", "", "999"]),
        ),
        max_size=30,
    ),
    st.sampled_from(["\n", "\r\n"]),
)
def test_well_formed_quoted_chunks_take_the_fast_path(
    rows: list[tuple[str, str]], ending: str
) -> None:
    data = "".join(f"C1,{name},{zipcode},12.50{ending}" for name, zipcode in rows).encode()
    assert assert_same(data, column=2, columns=4, newline=ending)


# -- the decisions ---------------------------------------------------------------------------


def fast(data: bytes, column: int = 1, columns: int = 3) -> ScoredBytes | None:
    return score_bytes(data, TABLE, column=column, columns=columns)


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b'1,5" disk,9000\n', "a literal quote inside an unquoted field"),
        (b'a,"open\n', "the chunk ends inside a quoted field"),
        (b"a,\xff,9000\n", "not UTF-8: the exact path reports it"),
    ],
)
def test_chunks_left_to_the_exact_path(data: bytes, why: str) -> None:
    assert fast(data) is None, why


@pytest.mark.parametrize(
    "data",
    [
        b'a,"Maes, Jan",9000\r\n',
        b'a,"say ""hi""",1000\n"x\ny",b,9999\n',
        "é,\ufeffname,9000\n".encode(),
        b"a,b,9000",  # a last row without a line ending
        b"a,b,9000\r",  # ... ending in a bare CR
        b'a,"b"c,9000\n',  # closed quote then text: that row is malformed, the rest fast
        b"a,b\rc,9000\n",  # a bare CR inside a row
        b"\n\r\na,b,9000\n",  # empty rows
        b"a,b, 9000\na,b,09000\na,b,\na,b,abc\na,b,c,d\n",  # rows the exact code reads
        b'a,b,"9000"\n',  # a quoted zipcode
        b'a,"' + b"x" * 100_000 + b'",9000\n' + b"b," * 50_000 + b"\n",  # long rows
    ],
)
def test_chunks_the_fast_path_scores_as_the_exact_one(data: bytes) -> None:
    assert assert_same(data)


def test_a_quoted_row_past_the_csv_field_limit_is_read_the_exact_way() -> None:
    limit = csv.field_size_limit()
    data = b'a,"' + b"x" * (limit + 1) + b'",9000\na,b,9000\n'
    assert assert_same(data, column=2)
    scored = fast(data, column=2)
    assert scored is not None
    assert scored.invalid == 1
    assert scored.ok == 1


def test_an_empty_chunk_scores_nothing() -> None:
    assert fast(b"") == ScoredBytes(b"", 0, 0, 0, 0)
