"""Flower starts only when it is safe: with authentication, or listening on loopback only.

    python -m worker.flower.guard [Flower options]   # celery -A worker flower, on 127.0.0.1
    celery -A worker flower [Flower options]         # checked the same way

The check does not parse Flower's options itself: it reads the values Flower's own parser
settled on (tornado.options: `-x=v`, `--x=v`, `--x-y`/`--x_y`, the last one winning, the
config file, `FLOWER_*` variables), in Flower's process, after parsing and before the server
binds. Flower builds its app between the two and the app calls Celery's `import_modules`
signal, which this module connects to; `worker.celery_app` imports it, so every
`celery -A worker flower` is checked, whatever its working directory or config file.

Unless basic auth (each entry a non-empty user:password) or OAuth (`auth`) is set, every
address the listening address resolves to (as Tornado resolves it: an empty address means
every interface) must be loopback; a unix socket is local and allowed. Otherwise Flower exits
with status 1 and one line on stderr, never having bound a port. Flower's `/metrics` and
`/healthcheck` answer without authentication by Flower's design, so keep Flower on an
internal network either way.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from celery import signals

from worker.contract import listen_addresses
from worker.contract.errors import echo
from worker.contract.listen_addresses import is_loopback
from worker.contract.secret_files import refuse_placeholder

DEFAULT_ADDRESS = "127.0.0.1"


class UnsafeFlower(RuntimeError):
    """Flower would listen beyond loopback without authentication."""


def bound_addresses(address: str, port: int) -> list[str]:
    """The addresses Flower would listen on (see `listen_addresses.bound_addresses`).

    Raises:
        UnsafeFlower: the address does not resolve (Flower could not start either).
    """
    try:
        return listen_addresses.bound_addresses(address, port)
    except listen_addresses.UnresolvableAddress as exc:
        raise UnsafeFlower(f"cannot resolve Flower's address {echo(address)} ({exc})") from None


def check(
    *,
    address: str,
    port: int,
    basic_auth: Sequence[str] | None,
    auth: str | None,
    unix_socket: str | None = None,
) -> None:
    """Raise UnsafeFlower unless Flower is on loopback (or a unix socket) or authenticated."""
    entries = list(basic_auth or [])
    for entry in entries:
        user, _, password = entry.partition(":")
        if not user or not password:
            raise UnsafeFlower("basic auth must be user:password, both non-empty")
        try:
            refuse_placeholder(password)
        except ValueError as exc:
            raise UnsafeFlower(f"the basic auth password {exc}") from None
    if entries or auth or unix_socket:
        return
    exposed = [found for found in bound_addresses(address, port) if not is_loopback(found)]
    if exposed:
        where = echo(address) if address else "all interfaces"
        raise UnsafeFlower(
            f"refusing to start Flower on {where} port {port} (it would listen on "
            f"{', '.join(exposed[:4])}) without authentication: set "
            "FLOWER_BASIC_AUTH=user:password (or FLOWER_AUTH), or bind it to 127.0.0.1"
        )


def check_flower_options(options: Any) -> None:
    """`check` over Flower's parsed options (its `tornado.options.options`)."""
    check(
        address=str(options.address or ""),
        port=int(options.port or 0),
        basic_auth=options.basic_auth,
        auth=options.auth,
        unix_socket=options.unix_socket,
    )


def _running_flower() -> bool:
    """True when the command running is Flower's (`celery ... flower`, `python -m flower`)."""
    import click

    command = sys.modules.get("flower.command")
    context = click.get_current_context(silent=True)
    return command is not None and context is not None and context.command is command.flower


def refuse_unsafe_flower(**_: object) -> None:
    """Flower's app calls this after its options are final and before it binds."""
    if not _running_flower():
        return
    from tornado.options import options

    try:
        check_flower_options(options)
    except UnsafeFlower as exc:
        print(f"flower: {exc}", file=sys.stderr, flush=True)
        # SystemExit, not an exception: Celery's signal would hand an exception back to
        # Flower, which would print a traceback.
        raise SystemExit(1) from None


signals.import_modules.connect(refuse_unsafe_flower)


def flower_command(argv: Sequence[str] = ()) -> list[str]:
    """The command `python -m worker.flower.guard` runs: Flower on the app, options as given."""
    return [sys.executable, "-m", "celery", "-A", "worker", "flower", *argv]


def main() -> None:
    # The lowest-precedence source: an option, the config file or FLOWER_ADDRESS overrides it,
    # and Flower's own default ("") would mean every interface.
    os.environ.setdefault("FLOWER_ADDRESS", DEFAULT_ADDRESS)
    command = flower_command(sys.argv[1:])
    os.execvp(command[0], command)  # noqa: S606 - a fixed program; Flower checks its options


if __name__ == "__main__":
    main()
