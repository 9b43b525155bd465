"""Start Flower only when it is safe: with authentication, or bound to loopback.

    python -m worker.flower_guard [more Flower options]

runs `python -m celery -A worker flower --address=A --port=P ...` with `FLOWER_ADDRESS` (default
127.0.0.1) and `FLOWER_PORT` (default 5555). On any other address it refuses to start unless
`FLOWER_BASIC_AUTH` (user:password[,user:password]) or `FLOWER_AUTH` (OAuth) is set.
Flower's `/metrics` and `/healthcheck` answer without authentication by Flower's design, so
keep Flower on an internal network either way.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping, Sequence


class UnsafeFlower(RuntimeError):
    """Flower would listen beyond loopback without authentication."""


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def flower_command(env: Mapping[str, str], extra: Sequence[str] = ()) -> list[str]:
    """The Celery command line for Flower, or UnsafeFlower when it would be open to all."""
    address = env.get("FLOWER_ADDRESS", "127.0.0.1")
    port = env.get("FLOWER_PORT", "5555")
    authenticated = bool(env.get("FLOWER_BASIC_AUTH") or env.get("FLOWER_AUTH"))
    if not authenticated and not is_loopback(address):
        raise UnsafeFlower(
            f"refusing to start Flower on {address or 'all interfaces'}:{port} without "
            "authentication: set FLOWER_BASIC_AUTH=user:password (or FLOWER_AUTH), "
            "or bind it to 127.0.0.1"
        )
    if env.get("FLOWER_BASIC_AUTH") and ":" not in env["FLOWER_BASIC_AUTH"]:
        raise UnsafeFlower("FLOWER_BASIC_AUTH must be user:password")
    return [
        sys.executable, "-m", "celery", "-A", "worker", "flower",
        f"--address={address}", f"--port={port}", *extra,
    ]  # fmt: skip


def main() -> None:
    try:
        command = flower_command(os.environ, sys.argv[1:])
    except UnsafeFlower as exc:
        print(f"flower: {exc}", file=sys.stderr)
        sys.exit(1)
    os.execvp(command[0], command)  # noqa: S606 - a fixed program, arguments validated above


if __name__ == "__main__":
    main()
