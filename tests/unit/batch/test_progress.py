"""The batch progress (producer/batch/progress.py): the bar fits an 80-column terminal and still
shows the whole job id; the plain lines of a job without a terminal."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from producer.batch.progress import Reporter
from producer.batch.progress_bar import RichReporter, compact

JOB = "3f2a9c01d4e5b6a7"


@pytest.mark.parametrize("rows", [200_002, 12_345_678])
def test_the_bar_fits_80_columns_with_every_number_whole(rows: int) -> None:
    # Given an 80-column terminal
    stream = io.StringIO()
    console = Console(file=stream, width=80, force_interactive=False, record=True)
    # When a job of `rows` rows runs to the end (its last frame has the widest numbers)
    reporter = RichReporter(JOB, rows, stream, console=console)
    reporter.update(rows)
    reporter.close(finished=True)
    # Then no line is cut, the counts are whole, and the full id was shown once
    text = console.export_text()
    lines = [line for line in text.splitlines() if line.strip()]
    assert all(len(line) <= 80 for line in lines), lines
    assert "…" not in text
    assert f"{rows}/{rows}" in text
    assert f"zipscore: job {JOB}" in text


@pytest.mark.parametrize(
    ("rate", "text"),
    [(0.0, "0"), (950.4, "950"), (12_345.0, "12.3k"), (456_789.0, "457k"), (4_560_000.0, "4.56M")],
)
def test_rates_are_compact(rate: float, text: str) -> None:
    assert compact(rate) == text
    assert len(compact(rate)) <= 6


def test_runner_progress_reporter_writes_plain_lines() -> None:
    stream = io.StringIO()
    with Reporter("abc", 10, stream, every=0.0) as reporter:
        reporter.update(5)
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("zipscore: job abc: 5 rows of 10 (50%)")
    assert len(lines) == 2


def test_a_progress_line_of_a_file_without_rows_shows_no_share() -> None:
    """A header-only file has 0 lines: its last line divided by 0 and crashed the CLI."""
    stream = io.StringIO()
    with Reporter("abc", 0, stream):
        pass
    assert stream.getvalue().startswith("zipscore: job abc: 0 rows, ")
