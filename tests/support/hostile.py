"""Shared by the hostile-file tests: hypothesis settings for fuzzing, junk bytes spliced into
a file, and the CLI invoked as a user would."""

from __future__ import annotations

from click.testing import CliRunner, Result
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from producer.cli import main as cli

BOM = "\ufeff"
FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def invoke(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli.cli, list(args), standalone_mode=True)


def corrupt(data: bytes, junk: bytes, where: int) -> bytes:
    """`junk` spliced into `data` at a position chosen by `where`."""
    at = where % (len(data) + 1)
    return data[:at] + junk + data[at:]


JUNK = st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf", b"\x85"])
