"""Checking an input before any job (producer/batch/prescan.py, header.py, scan.py): what is
refused up front, and the layout of what is accepted.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from producer.batch import scan as csv_scan
from producer.batch.cutting import iter_chunks
from producer.batch.prescan import inspect_handle, inspect_input
from tests.support.csv_text import write
from worker.contract.errors import ErrorCode, ZipscoreError


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


def test_a_file_still_being_written_while_it_is_checked_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer appends while the check reads: the bytes checked are no file's whole content
    (its last row may be cut mid-line), so the file is refused, not scored."""
    monkeypatch.setattr(csv_scan, "SCAN_BLOCK", 64)
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
