"""Scoring chunks (worker/batch/scoring.py), cutting them (producer/batch/csv_input.py).

No Redis: plain functions over text and bytes.
"""

from __future__ import annotations

import csv
import io
import itertools
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.batch import csv_input as csv_chunks
from producer.batch.csv_input import cut, inspect_handle, inspect_input, iter_chunks
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
from worker.contract.errors import ErrorCode, ZipscoreError
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


# -- cutting ---------------------------------------------------------------------------------


def test_cut_extends_past_a_line_break_inside_quotes() -> None:
    buf = b'1,"a\nb"\n2,c\n3,d\n'
    # The chunk size counts lines; a cut inside quotes moves to the next row boundary.
    assert cut(buf, 1) == len(b'1,"a\nb"\n')
    assert cut(buf, 2) == len(b'1,"a\nb"\n')
    assert cut(buf, 3) == len(b'1,"a\nb"\n2,c\n')
    assert cut(buf, 5) is None


def test_cut_ignores_a_stray_quote_inside_a_field() -> None:
    buf = b'1,5" disk,9000\n2,x,9000\n3,"a\nb",9000\n'
    assert cut(buf, 1) == len(b'1,5" disk,9000\n')
    assert cut(buf, 3) == len(buf)  # the quoted line break still joins its row


def test_stray_quotes_far_apart_never_make_a_chunk_outgrow_the_limit(tmp_path: Path) -> None:
    rows = [b"1,9000,x\n"] * 2000
    rows[10] = rows[1500] = b'1,9000,5" disk\n'
    path = write(tmp_path, b"id,zipcode,note\n" + b"".join(rows))
    layout = inspect_input(path, "zipcode")  # accepted: the quotes are text
    with path.open("rb") as f:
        chunks = list(iter_chunks(f, layout.body_start, 0, lines=100, max_bytes=2000))
    assert [c.data.count(b"\n") for c in chunks] == [100] * 20


def write(tmp_path: Path, data: bytes, name: str = "in.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"\r\n\n", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not UTF-8"),
        (b"zipcode\n9000\n\x00\n", "NUL"),
        (b"id,zip\n1,9000\n", "no column 'zipcode' in the header (columns: 'id', 'zip')"),
        (b"Zipcode,ZIPCODE \n1,2\n", "2 columns are called 'zipcode'"),
        (b'zipcode,x\n9000,"open\n', "unbalanced quotes"),
        (b'zipcode,x\n9000,5" a\n9000,"open\n9000,b\n', "unbalanced quotes"),
        (b'zipcode,x\n9000,"open ""still"" open\n', "unbalanced quotes"),
        (b"zipcode\n9000\n\xc3", "ends inside a character"),
        (b"zipcode\n" + "é".encode("latin-1") + b"\n", "not UTF-8 (bad byte near byte 8)"),
    ],
)
def test_files_that_cannot_be_scored_are_refused_up_front(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    with pytest.raises(ZipscoreError) as caught:
        inspect_input(write(tmp_path, data), "zipcode")
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE
    assert reason in caught.value.message


@pytest.mark.parametrize(
    "body", [b'9000,5" disk\n', b'9000,a"\n9000,b"\n9000,"c\n"""\n', b'9000,"x"\n9000,y"']
)
def test_quotes_that_are_text_or_closed_are_accepted(tmp_path: Path, body: bytes) -> None:
    layout = inspect_input(write(tmp_path, b"zipcode,x\n" + body), "zipcode")
    assert layout.lines == body.count(b"\n") + (not body.endswith(b"\n"))


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ZipscoreError) as caught:
        inspect_input(tmp_path / "nope.csv", "zipcode")
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE


def test_header_with_bom_crlf_and_a_column_found_ignoring_case(tmp_path: Path) -> None:
    layout = inspect_input(
        write(tmp_path, b"\xef\xbb\xbfid, ZipCode\r\n1,9000\r\n2,9170"), "zipcode"
    )
    assert (layout.bom, layout.header, layout.newline) == (True, "id, ZipCode", "\r\n")
    assert (layout.columns, layout.column, layout.lines) == (2, 1, 2)
    assert layout.body_start == len(b"\xef\xbb\xbfid, ZipCode\r\n")


def test_a_header_only_file_has_no_rows(tmp_path: Path) -> None:
    layout = inspect_input(write(tmp_path, b"zipcode"), "zipcode")
    assert (layout.lines, layout.newline, layout.body_start) == (0, "\n", 7)


def test_chunks_from_a_recorded_offset_are_the_same_chunks(tmp_path: Path) -> None:
    body = b"".join(b'%d,"a\nb",%d\n' % (i, 1000 + i) for i in range(50))
    path = write(tmp_path, b"id,x,zipcode\n" + body)
    layout = inspect_input(path, "zipcode")
    with path.open("rb") as f:
        chunks = list(iter_chunks(f, layout.body_start, 0, lines=7, max_bytes=1 << 20))
        again = list(iter_chunks(f, chunks[3].start, 3, lines=7, max_bytes=1 << 20))
    assert again == chunks[3:]
    assert b"".join(c.data for c in chunks) == body
    assert all(c.data.count(b'"') % 2 == 0 for c in chunks)


def test_a_chunk_of_too_many_bytes_is_cut_short_on_a_row_boundary(tmp_path: Path) -> None:
    """It used to fail the job (after the check had passed): "a chunk of 600 lines ... exceeds
    1000 bytes"; now it holds the whole rows that fit."""
    path = write(tmp_path, b"zipcode\n" + b"9000\n" * 1000)
    with path.open("rb") as f:
        chunks = list(iter_chunks(f, 8, 0, lines=600, max_bytes=1000))
    assert [len(c.data) for c in chunks] == [1000] * 5
    assert b"".join(c.data for c in chunks) == b"9000\n" * 1000


def test_a_row_longer_than_a_chunk_may_be_is_refused_by_the_check(tmp_path: Path) -> None:
    body = b"9000,x\n" * 3 + b'9170,"' + b"y\n" * 600 + b'"\n' + b"1000,z\n"
    path = write(tmp_path, b"zipcode,note\n" + body)
    with pytest.raises(ZipscoreError) as caught:
        inspect_input(path, "zipcode", max_bytes=1000)
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE
    assert "the row at line 5 is longer than 1000 bytes" in caught.value.message
    layout = inspect_input(path, "zipcode", max_bytes=2000)  # the row fits: accepted
    with path.open("rb") as f:
        chunks = list(iter_chunks(f, layout.body_start, 0, lines=2, max_bytes=2000))
    assert [c.data.count(b"\n") for c in chunks] == [2, 602, 1]  # rows 3-4, then 5


# -- the property: split + score + reassemble keeps every row, in order ----------------------

# Any text but NUL and a lone CR (csv.writer leaves "\r" unquoted with "\n" line endings,
# which makes an ambiguous file); quotes, commas and line feeds in fields are all covered.
field_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"], exclude_characters="\x00\r"),
    max_size=8,
)
zipcode_text = st.one_of(
    st.integers(min_value=0, max_value=12_000).map(str), st.sampled_from(["", "abc", " 9000"])
)


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


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(field_text, zipcode_text, field_text), max_size=30),
    lines=st.integers(min_value=1, max_value=12),
    max_bytes=st.integers(min_value=1, max_value=120),
    block=st.sampled_from([csv_chunks.SCAN_BLOCK, 5, 64]),
)
def test_chunks_are_cut_by_bytes_and_lines_wherever_the_check_accepts(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[str, str, str]],
    lines: int,
    max_bytes: int,
    block: int,
) -> None:
    """The check accepts a file exactly when its longest row fits in a chunk; then every
    chunk is whole rows, at most `lines` rows and `max_bytes` bytes, and
    cutting again from any chunk's start gives the same chunks."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["note", "zipcode", "other"])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("bytes") / "in.csv"
    path.write_bytes(buffer.getvalue().encode("utf-8"))
    row_bytes = [len(written(row)) for row in rows]
    try:
        with mock.patch.object(csv_chunks, "SCAN_BLOCK", block):  # rows across read blocks
            layout = inspect_input(path, "zipcode", max_bytes=max_bytes)
    except ZipscoreError as exc:
        assert "longer than" in exc.message
        assert max(row_bytes) > max_bytes
        return
    assert max(row_bytes, default=0) <= max_bytes
    with path.open("rb") as f:
        chunks = list(iter_chunks(f, layout.body_start, 0, lines=lines, max_bytes=max_bytes))
        for chunk in chunks:
            assert len(chunk.data) <= max_bytes
            assert 1 <= len(split_rows(chunk.data.decode())) <= lines
            again = iter_chunks(f, chunk.start, chunk.index, lines=lines, max_bytes=max_bytes)
            assert list(again) == chunks[chunk.index :]
    records = [row for c in chunks for row in split_rows(c.data.decode())]
    assert records == [written(row).decode().removesuffix("\n") for row in rows]


def written(row: tuple[str, str, str]) -> bytes:
    """One row as csv.writer writes it, with its line ending."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    return buffer.getvalue().encode("utf-8")


def test_a_file_still_being_written_while_it_is_checked_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer appends while the check reads: the bytes checked are no file's whole content
    (its last row may be cut mid-line), so the file is refused, not scored."""
    monkeypatch.setattr(csv_chunks, "SCAN_BLOCK", 64)
    path = write(tmp_path, b"zipcode,note\n" + b"9000,x\n" * 100 + b"90")

    class Appending(io.BufferedReader):
        reads = 0

        def read(self, size: int | None = -1) -> bytes:
            self.reads += 1
            if self.reads == 3:  # the check is inside the body
                with path.open("ab") as writer:
                    writer.write(b"00,y\n")
            return super().read(size)

    with Appending(io.FileIO(path)) as handle, pytest.raises(ZipscoreError) as caught:
        inspect_handle(handle, path, "zipcode", max_bytes=1000)
    assert caught.value.code is ErrorCode.BAD_INPUT_FILE
    assert "changed while it was checked" in caught.value.message
