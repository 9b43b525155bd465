"""The `zipscore` command line: ask questions through the queue, and manage the risk table.

    zipscore lookup 9000 [--json]
    zipscore zipcodes --risk-factor A [--json]
    zipscore index [--base-year 2004] [--json] | zipscore index refresh [--json]
    zipscore index remove-month --base-year 2004 --month 2150-01 [--json]
    zipscore score IN.csv -o OUT.csv [--zipcode-column zipcode] [--chunk-size N] [--json]
    zipscore score --resume JOB_ID | zipscore job status JOB_ID [--json]
    zipscore db migrate | zipscore db load-zipcodes FILE [--if-empty]
    zipscore doctor
    zipscore serve [--host 127.0.0.1] [--port 5000]       # the HTTP gateway

Exit status: 0 answered, 2 the input was refused (with its code; `USAGE` for a command line
that cannot be parsed), 1 anything else, 130 interrupted (Ctrl-C); errors are one line on
stderr (and the contract's JSON on stdout with `--json`), never a traceback.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
from typing import Any, NoReturn

import click

from producer.cli import batch, index, lookups, operations
from producer.cli.answers import fail
from worker.contract.errors import ErrorCode, ZipscoreError, capped
from worker.contract.settings import SettingsError


def make_client() -> Any:
    from producer.client import Client

    return Client()


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    invoke_without_command=True,
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    envvar="ZIPSCORE_VERBOSE",
    help="Log what is sent (task ids) to stderr.",
)
@click.version_option(package_name="zipscore", message="%(prog)s %(version)s")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """zipscore: Belgian zipcode risk factors through a Celery queue."""
    from worker.contract import log_setup

    if ctx.invoked_subcommand is None:  # `zipscore` alone: the help, as asked for
        click.echo(ctx.get_help())
        ctx.exit(0)
    # Without -v the one-line answer or error is all a user sees: library retries and
    # reconnects (logged by Celery at ERROR) stay quiet.
    log_setup.configure(logging.INFO if verbose else logging.CRITICAL + 1)
    ctx.obj = make_client  # read here, so a test may replace it


for command in (
    lookups.lookup,
    lookups.zipcodes,
    index.index,
    batch.score,
    batch.job,
    operations.db,
    operations.doctor,
    operations.serve,
):
    cli.add_command(command)


def refuse_usage(exc: click.UsageError, as_json: bool) -> NoReturn:
    """One line with the USAGE code (and the contract's JSON), exit status 2."""
    command = exc.ctx.command_path if exc.ctx else "zipscore"
    message = capped(exc.format_message())  # click quotes the refused value whole
    error = ZipscoreError(ErrorCode.USAGE, message)
    if as_json:
        click.echo(json.dumps(error.to_json()))
    click.echo(f"zipscore: {error.code.value}: {error.message} (try: {command} --help)", err=True)
    sys.exit(2)


def main() -> None:
    """Console entry point: contract errors and surprises become one line, never a traceback."""
    try:
        cli.main(prog_name="zipscore", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.UsageError as exc:
        refuse_usage(exc, as_json="--json" in sys.argv)
    except click.ClickException as exc:
        click.echo(f"zipscore: {capped(exc.format_message())}", err=True)
        sys.exit(1)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("zipscore: interrupted", err=True)
        sys.exit(130)  # 128 + SIGINT, as shells report a command stopped by Ctrl-C
    except SettingsError as exc:
        fail(ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, str(exc)), as_json="--json" in sys.argv)
    except ZipscoreError as exc:
        fail(exc, as_json="--json" in sys.argv)
    except Exception as exc:  # the last line of defence: no traceback reaches a user
        if "--json" in sys.argv:  # still the contract's JSON, as every other failure
            error = ZipscoreError(ErrorCode.BACKEND_UNAVAILABLE, f"unexpected {type(exc).__name__}")
            click.echo(json.dumps(error.to_json()))
        click.echo(f"zipscore: unexpected {type(exc).__name__}; see the worker logs", err=True)
        sys.exit(1)


def run() -> None:
    """The `zipscore` console script: `main`, then an exit that skips the last collection.

    At exit the interpreter collects every object it still tracks: after a batch run (the
    imports of Celery, redis, pydantic and numpy) that took 0.1 s of a 0.5 s command. The
    objects are frozen instead (`gc.freeze`): freed as the process ends, never traversed.
    atexit handlers (span exporters' flush) still run.
    """
    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":
    run()
