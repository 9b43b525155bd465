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

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from worker.contract.admin import database_admin
from worker.contract.errors import ErrorCode, ZipscoreError, capped
from worker.contract.settings import SettingsError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


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


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("zipcode")
@json_option
def lookup(zipcode: str, as_json: bool) -> None:
    """Risk factor of one ZIPCODE (1000-9999)."""
    result = answer_or_fail(lambda: make_client().lookup(zipcode), as_json)
    human = result.risk_factor or f"unknown: {result.zipcode} is not in the risk table"
    emit(result.model_dump(), as_json, human)


@cli.command()
@click.option("--risk-factor", "risk_factor", required=True, help="A, B or C.")
@json_option
def zipcodes(risk_factor: str, as_json: bool) -> None:
    """Every zipcode carrying a risk factor."""
    listing = answer_or_fail(lambda: make_client().by_risk_factor(risk_factor), as_json)
    emit(listing.model_dump(), as_json, " ".join(str(z) for z in listing.zipcodes))


@cli.group(invoke_without_command=True)
@click.option("--base-year", "base_year", default=None, help="1996, 2004, 2013 or 2025.")
@json_option
@click.pass_context
def index(ctx: click.Context, base_year: str | None, as_json: bool) -> None:
    """Latest Belgian health index for a base year.

    The base year is 2004 unless --base-year says otherwise; `zipscore index refresh` asks
    Statbel for the newest months now.
    """
    if ctx.invoked_subcommand is not None:
        return
    answer = answer_or_fail(lambda: make_client().index(base_year), as_json)
    human = f"{answer.index:g} ({answer.base_year} = 100, {answer.period})"
    if answer.stale:
        human += f"; stale: last refreshed {answer.fetched_at}"
    emit(answer.model_dump(), as_json, human)


@index.command("refresh")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None, help="Seconds to wait.")
@json_option
def index_refresh(timeout: float | None, as_json: bool) -> None:
    """Refresh the health index from Statbel now, and wait for the outcome.

    Statbel is tried once: when it cannot be reached the answer is INDEX_UNAVAILABLE with
    the cause, at once (the scheduled refresh is the one that retries).
    """
    report = answer_or_fail(lambda: make_client().refresh_index(timeout=timeout), as_json)
    human = (
        f"stored {report.months_stored} months ({report.months_new} new, "
        f"{report.months_changed} changed) for base years "
        f"{', '.join(map(str, report.base_years))}"
    )
    emit(report.model_dump(), as_json, human)


@index.command("remove-month")
@click.option("--base-year", "base_year", required=True, help="1996, 2004, 2013 or 2025.")
@click.option("--month", required=True, metavar="YYYY-MM", help="The month to delete.")
@json_option
def index_remove_month(base_year: str, month: str, as_json: bool) -> None:
    """Delete a wrong month from the stored history; the latest month is recomputed now."""
    admin = answer_or_fail(database_admin, as_json)
    report = answer_or_fail(lambda: admin.remove_index_month(base_year, month), as_json)
    latest = report["latest"]
    now = f"{latest['period']} ({latest['index']:g})" if latest else "no month"
    human = (
        f"removed {report['removed']} ({report['value']:g}) of base year "
        f"{report['base_year']}; latest is now {now}"
    )
    emit(report, as_json, human)


@cli.command()
@click.argument(
    "source", required=False, type=click.Path(path_type=Path), callback=files_not_streams
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    callback=files_not_streams,
    help="Where to write.",
)
@click.option("--zipcode-column", default="zipcode", show_default=True, help="Column name.")
@click.option(
    "--chunk-size", type=click.IntRange(1, 1_000_000), help="Lines per chunk (1-1000000)."
)
@click.option("--resume", "resume_job", metavar="JOB_ID", help="Finish an interrupted job.")
@json_option
def score(
    *,
    source: Path | None,
    output: Path | None,
    zipcode_column: str,
    chunk_size: int | None,
    resume_job: str | None,
    as_json: bool,
) -> None:
    """Score a CSV portfolio through the batch queue.

    Every row of SOURCE is written to OUTPUT, in order, with its risk factor.
    """
    from producer.batch.progress import Reporter, progress_for

    if resume_job is None and (source is None or output is None):
        raise click.UsageError("give SOURCE and -o OUTPUT, or --resume JOB_ID")
    if resume_job is not None and (source is not None or output is not None):
        raise click.UsageError("--resume takes the input and output recorded in the job")
    started: list[str] = []

    def progress(job: str, total: int) -> Reporter:
        started.append(job)
        return progress_for(job, total)

    def resume_hint(client: Any) -> str | None:
        """The job to resume, if there is one a resume can finish (never a lost record)."""
        if not started:
            return None
        try:
            state = client.batch_status(started[0]).state
        except Exception:  # lost, expired or unreachable: a resume would not find it
            return None
        return started[0] if state in ("interrupted", "running") else None

    client: Any = None
    try:
        client = make_client()
        if resume_job is not None:
            summary = client.resume_batch(resume_job, progress=progress)
        else:
            assert source is not None
            assert output is not None
            summary = client.score_file(
                source,
                output,
                zipcode_column=zipcode_column,
                chunk_size=chunk_size,
                progress=progress,
            )
    except ZipscoreError as exc:
        if not exc.code.is_refused_input and (job := resume_hint(client)) is not None:
            exc.message += f" (resume with: zipscore score --resume {job})"
        fail(exc, as_json)
    except KeyboardInterrupt:
        job = resume_hint(client)
        hint = f"; resume with: zipscore score --resume {job}" if job else ""
        click.echo(f"zipscore: interrupted{hint}", err=True)
        sys.exit(130)  # 128 + SIGINT, as for every command
    human = (
        f"scored {summary.rows} rows (ok {summary.ok}, unknown {summary.unknown}, "
        f"invalid {summary.invalid}) in {summary.seconds:.1f} s, "
        f"{summary.rows_per_second:,.0f} rows/s -> {summary.output} (job {summary.job_id})"
    )
    emit(summary.model_dump(), as_json, human)


@cli.group()
def job() -> None:
    """Batch jobs: the progress of one."""


@job.command("status")
@click.argument("job_id")
@json_option
def job_status(job_id: str, as_json: bool) -> None:
    """Progress of batch job JOB_ID."""
    status = answer_or_fail(lambda: make_client().batch_status(job_id), as_json)
    human = (
        f"job {status.job_id}: {status.state}, {status.rows} rows "
        f"(ok {status.ok}, unknown {status.unknown}, invalid {status.invalid}), "
        f"chunks {status.chunks_done}/{status.chunks_total}, {status.output}"
    )
    emit(status.model_dump(), as_json, human)


@cli.group()
def db() -> None:
    """Schema migrations and the risk table.

    These commands talk to Postgres directly, not through the queue.
    """


@db.command()
@json_option
def migrate(as_json: bool) -> None:
    """Apply pending schema migrations."""
    admin = answer_or_fail(database_admin, as_json)
    applied = answer_or_fail(admin.migrate, as_json)
    emit({"applied": applied}, as_json, f"applied migrations: {applied or 'none pending'}")


@db.command("load-zipcodes")
@click.argument("path", type=click.Path(path_type=Path), callback=files_not_streams)
@click.option("--if-empty", is_flag=True, help="Load only when no table is loaded yet.")
@json_option
def load_zipcodes(path: Path, if_empty: bool, as_json: bool) -> None:
    """Replace the risk table with the rules in PATH, atomically."""
    admin = answer_or_fail(database_admin, as_json)
    report = answer_or_fail(lambda: admin.load_zipcodes(path, if_empty=if_empty), as_json)
    human = (
        f"loaded {report['zipcodes']} zipcodes from {report['rules']} rules "
        f"(table version {report['version']})"
        if report["loaded"]
        else f"kept the loaded table (version {report['version']})"
    )
    emit(report, as_json, human)


@cli.command()
@click.option(
    "--require-free-ports",
    is_flag=True,
    help="Fail when a port make run serves on is taken (make run checks this first).",
)
@json_option
def doctor(require_free_ports: bool, as_json: bool) -> None:
    """Check that Postgres and Redis answer, and make run's ports.

    Says what to start when a service does not answer, and which process holds a port.
    """
    admin = answer_or_fail(database_admin, as_json)
    from producer.ports import port_states

    report = admin.doctor()
    report["ports"] = port_states()
    busy = [f"{port} is {state}" for port, state in report["ports"].items() if state != "free"]
    lines = [f"{name}: {state}" for name, state in report["services"].items()]
    lines += [f"{port}: {state}" for port, state in report["ports"].items()]
    if require_free_ports and busy:
        report["ok"] = False
        lines.append(f"make run: {'; '.join(busy)}: stop it first (another make run?)")
    emit(report, as_json, "\n".join(lines))
    if not report["ok"]:
        sys.exit(1)


@cli.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    envvar="ZIPSCORE_GATEWAY_HOST",
    show_envvar=True,
    help="Address to listen on.",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=5000,
    show_default=True,
    envvar="ZIPSCORE_GATEWAY_PORT",
    show_envvar=True,
    help="Port.",
)
@json_option
def serve(host: str, port: int, as_json: bool) -> None:
    """Run the HTTP gateway until interrupted.

    uvicorn serves it; the OpenAPI docs are at /docs. Beyond loopback (e.g. --host 0.0.0.0)
    it needs API keys (ZIPSCORE_GATEWAY_API_KEYS_FILE) and refuses to start without them.
    `--json` only shapes errors, as for every command.
    """
    from producer.gateway.serve import serve as run_gateway

    run_gateway(host, port)


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


if __name__ == "__main__":
    main()
