"""`make run`'s ports: a busy one is found, with the process that holds it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from producer.ports import RUN_PORTS, holder, in_use, port_states

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def listening() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_listening_port_is_in_use_and_its_holder_is_named(listening: int) -> None:
    assert in_use(listening)
    found = holder(listening)
    assert found is not None
    assert f"pid {os.getpid()}" in found
    assert port_states({"gateway": listening}) == {
        f"port {listening} (gateway)": f"in use by {found}"
    }


def test_a_free_port_is_free() -> None:
    port = free_port()
    assert not in_use(port)
    assert port_states({"flower": port}) == {f"port {port} (flower)": "free"}


def test_the_ports_are_the_ones_the_procfile_serves_on() -> None:
    procfile = (ROOT / "Procfile").read_text()
    assert f"--port {RUN_PORTS['gateway']}" in procfile
    assert "flower" in procfile
    assert "FLOWER_PORT" not in procfile  # Flower keeps its default port, 5555
    assert RUN_PORTS["flower"] == 5555
