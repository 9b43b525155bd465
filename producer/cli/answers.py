"""How every `zipscore` command answers: one line or the contract's JSON, and its exit status."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from worker.contract.errors import ZipscoreError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
ClientFactory = Callable[[], Any]
"""What commands get as click's context object: it makes the producer client."""


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Answer in JSON.")(func)


def emit(answer: dict[str, Any], as_json: bool, human: str) -> None:
    click.echo(json.dumps(answer) if as_json else human)


def fail(error: ZipscoreError, as_json: bool) -> NoReturn:
    if as_json:
        click.echo(json.dumps(error.to_json()))
    click.echo(f"zipscore: {error.code.value}: {error.message}", err=True)
    sys.exit(2 if error.code.is_refused_input else 1)


def answer_or_fail(ask: Callable[[], T], as_json: bool) -> T:
    """The answer of `ask`, or the contract error printed and the matching exit status."""
    try:
        return ask()
    except ZipscoreError as exc:
        fail(exc, as_json)


def files_not_streams(ctx: click.Context, param: click.Parameter, value: Path | None) -> Any:
    """Refuse `-`: a batch reads its input twice (the check, then the scoring) and puts its
    output in place by renaming a finished file; a table load is checked whole before it
    replaces anything. Neither can be a pipe."""
    if value is not None and str(value) == "-":
        raise click.BadParameter(
            "'-' (standard input or output) is not accepted: give a file path", ctx, param
        )
    return value
