"""The local ports `make run` serves on, and who holds one that is busy.

`zipscore doctor` reports them; `zipscore doctor --require-free-ports` (run by `make run`
before anything starts) fails with one line naming the busy port and its holder, instead of
a Flower traceback and a uvicorn bind error halfway through start-up.
"""

from __future__ import annotations

import contextlib
import socket

# As the Procfile starts them: the gateway with --port 5000, Flower on its default port.
RUN_PORTS = {"gateway": 5000, "flower": 5555}


def in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether binding `host:port` fails because something listens there."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As servers bind: a port whose last connection sits in TIME_WAIT is free to them.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def holder(port: int) -> str | None:
    """`name (pid N: command)` of the process listening on `port`, when it can be seen."""
    try:
        import psutil
    except ImportError:  # a producer-only install: the port is reported without its holder
        return None
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    return None
                process = psutil.Process(conn.pid)
                command = " ".join(process.cmdline())[:80]
                return f"{process.name()} (pid {conn.pid}: {command})"
    return None


def port_states(ports: dict[str, int] = RUN_PORTS) -> dict[str, str]:
    """`port 5000 (gateway)` -> `free`, or `in use by <holder>`."""
    states = {}
    for role, port in ports.items():
        key = f"port {port} ({role})"
        if not in_use(port):
            states[key] = "free"
        else:
            states[key] = f"in use by {holder(port) or 'another process'}"
    return states
