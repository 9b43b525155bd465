"""Start Flower only when it is safe: with authentication, or bound to loopback.

    python -m worker.flower_guard [more Flower options]

runs `python -m celery -A worker flower --address=A --port=P ...`. The address and port come
from the options given, else `FLOWER_ADDRESS` / `FLOWER_PORT`, else 127.0.0.1:5555. On any
address but loopback it refuses to start unless basic auth (`FLOWER_BASIC_AUTH` or
`--basic-auth`, each entry a non-empty user:password) or OAuth (`FLOWER_AUTH` / `--auth`) is
set. `flowerconfig.py` at the repository root applies the same check when Flower is started
directly (`celery -A worker flower`, which reads that file from the working directory).
Flower's `/metrics` and `/healthcheck` answer without authentication by Flower's design, so
keep Flower on an internal network either way.
"""

from __future__ import annotations

import ipaddress
import os
import sys
from collections.abc import Mapping, Sequence

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = "5555"


class UnsafeFlower(RuntimeError):
    """Flower would listen beyond loopback without authentication."""


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _option_name(token: str) -> str:
    return token[2:].split("=", 1)[0].replace("-", "_")


def given_options(argv: Sequence[str]) -> dict[str, str]:
    """Flower's own options in `argv` (`--name=value` or `--name value`); the last one wins."""
    found: dict[str, str] = {}
    tokens = list(argv)
    for index, token in enumerate(tokens):
        if not token.startswith("--"):
            continue
        name = _option_name(token)
        if name == "conf":
            raise UnsafeFlower("--conf is refused: zipscore's flowerconfig.py is the config")
        if "=" in token:
            found[name] = token.split("=", 1)[1]
        elif index + 1 < len(tokens) and not tokens[index + 1].startswith("--"):
            found[name] = tokens[index + 1]
    return found


def effective_options(env: Mapping[str, str], argv: Sequence[str]) -> dict[str, str]:
    """What Flower will use: options given, else FLOWER_* variables, else the defaults."""
    given = given_options(argv)

    def pick(name: str, default: str = "") -> str:
        return given.get(name, env.get(f"FLOWER_{name.upper()}", default))

    return {
        "address": pick("address", DEFAULT_ADDRESS),
        "port": pick("port", DEFAULT_PORT) or DEFAULT_PORT,
        "basic_auth": pick("basic_auth"),
        "auth": pick("auth"),
    }


def check(options: Mapping[str, str]) -> None:
    """Raise UnsafeFlower unless Flower is on loopback or behind valid authentication."""
    basic = [entry for entry in options.get("basic_auth", "").split(",") if entry]
    for entry in basic:
        user, _, password = entry.partition(":")
        if not user or not password:
            raise UnsafeFlower("basic auth must be user:password, both non-empty")
    authenticated = bool(basic or options.get("auth"))
    address = options.get("address", "")
    if not authenticated and not is_loopback(address):
        raise UnsafeFlower(
            f"refusing to start Flower on {address or 'all interfaces'}:{options.get('port')} "
            "without authentication: set FLOWER_BASIC_AUTH=user:password (or FLOWER_AUTH), "
            "or bind it to 127.0.0.1"
        )


def flower_command(env: Mapping[str, str], extra: Sequence[str] = ()) -> list[str]:
    """The Celery command line for Flower, or UnsafeFlower when it would be open to all."""
    options = effective_options(env, extra)
    check(options)
    return [
        sys.executable, "-m", "celery", "-A", "worker", "flower",
        f"--address={options['address']}", f"--port={options['port']}", *extra,
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
