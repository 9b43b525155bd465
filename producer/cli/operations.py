"""Operator commands: `zipscore db ...`, `zipscore doctor` and `zipscore serve`.

The database commands call the database administration (worker/contract/admin.py says how
it is found); `serve` runs the HTTP gateway.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from producer.cli.answers import answer_or_fail, emit, files_not_streams, json_option
from worker.contract.admin import database_admin


@click.group()
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


@click.command()
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


@click.command()
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
