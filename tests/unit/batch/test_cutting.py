"""Cutting a body into chunks (producer/batch/cutting.py): whole rows, within the byte and
line limits, the same chunks from any recorded offset.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from producer.batch import scan as csv_scan
from producer.batch.cutting import cut, iter_chunks
from producer.batch.prescan import inspect_input
from tests.support.csv_text import field_text, write, zipcode_text
from worker.batch.scoring import split_rows
from worker.contract.errors import ZipscoreError


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


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(st.tuples(field_text, zipcode_text, field_text), max_size=30),
    lines=st.integers(min_value=1, max_value=12),
    max_bytes=st.integers(min_value=1, max_value=120),
    block=st.sampled_from([csv_scan.SCAN_BLOCK, 5, 64]),
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
        with mock.patch.object(csv_scan, "SCAN_BLOCK", block):  # rows across read blocks
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
