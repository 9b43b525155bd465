"""`zipscore index`: the latest health index, a refresh from Statbel now, a month removed."""

from __future__ import annotations

import click

from producer.cli.answers import ClientFactory, answer_or_fail, emit, json_option
from worker.contract.admin import database_admin


@click.group(invoke_without_command=True)
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
    make_client: ClientFactory = ctx.obj
    answer = answer_or_fail(lambda: make_client().index(base_year), as_json)
    human = f"{answer.index:g} ({answer.base_year} = 100, {answer.period})"
    if answer.stale:
        human += f"; stale: last refreshed {answer.fetched_at}"
    emit(answer.model_dump(), as_json, human)


@index.command("refresh")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=None, help="Seconds to wait.")
@json_option
@click.pass_obj
def index_refresh(make_client: ClientFactory, timeout: float | None, as_json: bool) -> None:
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
