"""Scoring chunks (worker/batch/scoring.py) and the quote scanner under it: rows kept byte
for byte, one output row per input row, and split + score + reassemble losing nothing.

No Redis: plain functions over text and bytes.
"""

from __future__ import annotations

import csv
import io
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.batch.cutting import iter_chunks
from producer.batch.prescan import inspect_input
from tests.support.csv_text import field_text, zipcode_text
from tests.support.fakes import SAMPLE_RULES
from worker.batch.scoring import ScoringTable, score_chunk, split_rows
from worker.contract.batch_output import output_header
from worker.contract.csv_rows import (
    BYTE_MARKS,
    FIELD_START,
    IN_FIELD,
    IN_QUOTES,
    QUOTE_IN_QUOTES,
    STR_MARKS,
    quote_state,
)
from worker.lookups.risk_table import expand


def sample_table() -> ScoringTable:
    """Built in each test, not at import, so mutation testing sees every change to it."""
    return ScoringTable.from_pairs(1, dict(expand(SAMPLE_RULES)))


def score(text: str, column: int = 1, columns: int = 3, newline: str = "\n") -> list[str]:
    return score_chunk(
        text, sample_table(), column=column, columns=columns, newline=newline
    ).text.split(newline)[:-1]


@pytest.mark.parametrize(
    ("row", "suffix"),
    [
        ("1,9000,x", ",B,ok,"),
        ("1,1501,x", ",,unknown,"),
        ("1, 9170 ,x", ",A,ok,"),
        ('1,"9170",x', ",A,ok,"),
        ("1,,x", ",,invalid,no zipcode"),
        ("1,   ,x", ",,invalid,no zipcode"),
        ("1,abc,x", ",,invalid,zipcode is not a number"),
        ("1,90.0,x", ",,invalid,zipcode is not a number"),
        ("1,-9000,x", ",,invalid,zipcode is not a number"),
        ("1,999,x", ",,invalid,zipcode outside 1000-9999"),
        ("1,10000,x", ",,invalid,zipcode outside 1000-9999"),
        ("1,0900,x", ",,invalid,zipcode outside 1000-9999"),
        ("1,9000", ",,invalid,expected 3 columns but found 2"),
        ("1,9000,x,y", ",,invalid,expected 3 columns but found 4"),
        ('1,"9000,x', ",,invalid,malformed CSV quoting"),
        ("", ",,invalid,empty row"),
    ],
)
def test_every_row_class_is_reported_in_its_row(row: str, suffix: str) -> None:
    assert score(row + "\n") == [row + suffix]


def test_counts_add_up() -> None:
    result = score_chunk(
        "1,9000,x\n2,1501,y\n3,abc,z\n4,9170,w\n", sample_table(), column=1, columns=3
    )
    assert (result.rows, result.ok, result.unknown, result.invalid) == (4, 2, 1, 1)


def test_rows_are_kept_byte_for_byte_including_quotes_and_line_breaks_in_fields() -> None:
    text = '1,9000,"a, ""quoted""\r\nvalue"\r\n2,"1315",plain\r\n'
    result = score_chunk(text, sample_table(), column=1, columns=3, newline="\r\n")
    assert result.text == '1,9000,"a, ""quoted""\r\nvalue",B,ok,\r\n2,"1315",plain,B,ok,\r\n'
    assert result.rows == 2


def test_crlf_and_lf_and_a_last_row_without_line_ending() -> None:
    assert score("1,9000,x\r\n2,9170,y\n3,1000,z", newline="\r\n") == [
        "1,9000,x,B,ok,",
        "2,9170,y,A,ok,",
        "3,1000,z,C,ok,",
    ]


@pytest.mark.parametrize("before", ["", '0,"1501",y\n'])
def test_a_bare_cr_ending_the_last_row_is_its_line_ending_with_or_without_quotes(
    before: str,
) -> None:
    """The chunk without quotes kept the CR in the row, the one with quotes did not: the
    same file's output changed with its chunk size."""
    assert score(before + "1,9000,x\r")[-1] == "1,9000,x,B,ok,"


def test_a_one_column_file() -> None:
    assert score("9000\n\n", column=0, columns=1) == ["9000,B,ok,", ",,invalid,no zipcode"]


def test_an_empty_chunk_scores_nothing() -> None:
    result = score_chunk("", sample_table(), column=0, columns=1)
    assert (result.text, result.rows) == ("", 0)


def test_split_rows_joins_lines_of_a_quoted_field() -> None:
    assert split_rows('a,"b\nc"\r\nd,e\n') == ['a,"b\nc"', "d,e"]


def test_a_stray_quote_inside_a_field_is_text_and_keeps_one_output_row_per_row() -> None:
    # Two rows with a `"` inside an unquoted field used to merge the three rows between them.
    text = '1,9000,x\n2,9000,5" disk\n3,9170,y\n4,1000,z\n5,1315,12" rack\n'
    assert score(text) == [
        "1,9000,x,B,ok,",
        '2,9000,5" disk,B,ok,',
        "3,9170,y,A,ok,",
        "4,1000,z,C,ok,",
        '5,1315,12" rack,B,ok,',
    ]


@pytest.mark.parametrize(
    ("text", "rows"),
    [
        ('a"b,c\nd,e\n', ['a"b,c', "d,e"]),  # literal: not at a field's start
        ('a,"b""\nc",d\ne\n', ['a,"b""\nc",d', "e"]),  # "" inside quotes is a quote
        ('a,"b"\nc"\n', ['a,"b"', 'c"']),  # a lone " closes; the next one is literal
        ('"a\nb"\n"c"\r\n', ['"a\nb"', '"c"']),  # quoted at a row's start, CRLF
        ('a,"b"x\nc\n', ['a,"b"x', "c"]),  # text after a closing quote: a bad row, not two
        ('a, "b\nc\n', ['a, "b', "c"]),  # a space before " makes it literal (as csv does)
    ],
)
def test_split_rows_follows_rfc_4180_quoting(text: str, rows: list[str]) -> None:
    assert split_rows(text) == rows


def test_quoting_the_csv_module_cannot_read_is_one_invalid_row() -> None:
    assert score('1,"9000"x,y\n2,9000,z\n') == [
        '1,"9000"x,y,,invalid,malformed CSV quoting',
        "2,9000,z,B,ok,",
    ]


# -- the property: split + score + reassemble keeps every row, in order ----------------------


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(field_text, zipcode_text, field_text), max_size=40),
    lines=st.integers(min_value=1, max_value=12),
    newline=st.sampled_from(["\n", "\r\n"]),
)
def test_split_score_reassemble_keeps_order_and_loses_nothing(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[str, str, str]],
    lines: int,
    newline: str,
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=newline)
    writer.writerow(["note", "zipcode", "other"])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("prop") / "in.csv"
    path.write_bytes(buffer.getvalue().encode("utf-8"))
    layout = inspect_input(path, "zipcode")
    with path.open("rb") as f:
        chunks = list(iter_chunks(f, layout.body_start, 0, lines=lines, max_bytes=1 << 20))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    output = "".join(
        score_chunk(
            c.data.decode(), sample_table(), column=1, columns=3, newline=layout.newline
        ).text
        for c in chunks
    )
    scored = list(csv.reader(io.StringIO(output, newline="")))
    assert [tuple(row[:3]) for row in scored] == rows
    for row in scored:
        expected = sample_table().suffix(row[1]).split(",")[1:]
        assert row[3:] == expected


# Rows written by hand, quoting included: unquoted fields with stray `"` (text, never at a
# field's start), RFC 4180 quoted fields holding commas, line breaks and doubled quotes, and
# quoted fields followed by text (bad quoting the csv module refuses).
plain_char = st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00\r\n,")


stray_field = st.one_of(
    st.text(alphabet=st.sampled_from('a9 "'), max_size=6),
    st.text(alphabet=plain_char, max_size=6),
).filter(lambda text: not text.startswith('"'))


quoted_field = st.text(alphabet=st.one_of(st.sampled_from('",\n\r'), plain_char), max_size=6).map(
    lambda text: '"' + text.replace('"', '""') + '"'
)


trailing_text = stray_field.filter(lambda text: text != "")


raw_field = st.one_of(
    stray_field,
    quoted_field,
    st.integers(min_value=900, max_value=10_000).map(str),
    st.tuples(quoted_field, trailing_text).map("".join),
)


def reference_state(text: str) -> int:
    """RFC 4180 quoting read one character at a time: the plain version of `quote_state`."""
    state = FIELD_START
    for char in text:
        if state == IN_QUOTES:
            state = QUOTE_IN_QUOTES if char == '"' else IN_QUOTES
        elif state == QUOTE_IN_QUOTES and char == '"':
            state = IN_QUOTES
        elif char == '"':
            state = IN_QUOTES if state == FIELD_START else IN_FIELD
        else:
            state = FIELD_START if char in ",\n" else IN_FIELD
    return state


@settings(max_examples=500, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from('"",\n\rab'), max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=4),
)
def test_quote_state_in_blocks_is_the_plain_state_machine(text: str, cuts: list[int]) -> None:
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    state = FIELD_START
    for start, end in itertools.pairwise(bounds):
        assert quote_state(text, start, end, state, STR_MARKS) == reference_state(text[:end])
        state = quote_state(text, start, end, state, STR_MARKS)
    data = text.encode()
    assert quote_state(data, 0, len(data), FIELD_START, BYTE_MARKS) == reference_state(text)


def reference_suffix(row: str, columns: int) -> str:
    """What a row should get, from the csv module alone (strict RFC 4180 reading)."""
    if row == "":
        return ",,invalid,empty row"
    try:
        parsed = list(csv.reader([row], strict=True))
    except csv.Error:
        return ",,invalid,malformed CSV quoting"
    if len(parsed) != 1:
        return ",,invalid,malformed CSV quoting"
    if len(parsed[0]) != columns:
        return f",,invalid,expected {columns} columns but found {len(parsed[0])}"
    return sample_table().suffix(parsed[0][1])


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.lists(raw_field, min_size=1, max_size=4).map(",".join), max_size=30),
    lines=st.integers(min_value=1, max_value=12),
    newline=st.sampled_from(["\n", "\r\n"]),
    again_from=st.integers(min_value=0, max_value=40),
)
def test_one_output_row_per_input_row_whatever_the_quotes(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[str],
    lines: int,
    newline: str,
    again_from: int,
) -> None:
    body = "".join(row + newline for row in rows)
    path = tmp_path_factory.mktemp("quotes") / "in.csv"
    path.write_bytes(("note,zipcode,other" + newline + body).encode("utf-8"))
    layout = inspect_input(path, "zipcode")  # never refused: every quoted field is closed
    with path.open("rb") as f:
        chunks = list(iter_chunks(f, layout.body_start, 0, lines=lines, max_bytes=1 << 20))
        if chunks:  # cutting again from any chunk's start gives the same chunks (resume)
            k = again_from % len(chunks)
            again = iter_chunks(f, chunks[k].start, k, lines=lines, max_bytes=1 << 20)
            assert list(again) == chunks[k:]
    output = "".join(
        score_chunk(c.data.decode(), sample_table(), column=1, columns=3, newline=newline).text
        for c in chunks
    )
    at = 0
    for row in rows:  # each output row: the input row's exact text, then its three columns
        assert output.startswith(row, at)
        end = output.index(newline, at + len(row))
        assert output[at + len(row) : end] == reference_suffix(row, 3)
        at = end + len(newline)
    assert at == len(output)


def test_a_table_knows_every_zipcode_of_the_range() -> None:
    table = ScoringTable.from_pairs(7, {1000: "A", 9999: "C", 5000: "A"})
    assert table.version == 7
    assert table.suffix("1000") == ",A,ok,"
    assert table.suffix("9999") == ",C,ok,"
    assert table.suffix("1001") == ",,unknown,"
    assert len(table.suffixes) == 9000


def test_the_output_header_adds_three_columns() -> None:
    assert output_header("id,zipcode") == "id,zipcode,risk_factor,status,error"
