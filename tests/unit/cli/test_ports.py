"""`make run`'s ports: a busy one is found, with the process that holds it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from producer.ports import RUN_PORTS, holder, in_use, port_states
from tests.support.paths import ROOT


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


def doctor_with(
    monkeypatch: pytest.MonkeyPatch, ports: dict[str, int], *args: str
) -> tuple[int, str]:
    """`zipscore doctor ARGS` with healthy services and make run's ports replaced."""
    from click.testing import CliRunner

    from producer import ports as ports_module
    from producer.cli import main as cli
    from worker.database import admin

    monkeypatch.setattr(admin, "doctor", lambda: {"ok": True, "services": {"broker": "ok"}})
    monkeypatch.setattr(ports_module, "RUN_PORTS", ports)
    monkeypatch.setattr(ports_module.port_states, "__defaults__", (ports,))
    result = CliRunner().invoke(cli.cli, ["doctor", *args])
    return result.exit_code, result.output


def test_doctor_reports_a_busy_port_and_its_holder_but_passes(
    monkeypatch: pytest.MonkeyPatch, listening: int
) -> None:
    code, out = doctor_with(monkeypatch, {"gateway": listening})
    assert code == 0
    assert f"port {listening} (gateway): in use by " in out
    assert f"pid {os.getpid()}" in out


def test_make_runs_check_fails_on_a_busy_port_with_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, listening: int
) -> None:
    code, out = doctor_with(
        monkeypatch, {"gateway": listening, "flower": free_port()}, "--require-free-ports"
    )
    assert code == 1
    verdict = [line for line in out.splitlines() if line.startswith("make run: ")]
    assert len(verdict) == 1
    assert f"port {listening} (gateway) is in use by" in verdict[0]
    assert "stop it first" in verdict[0]


def test_make_runs_check_passes_when_the_ports_are_free(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = doctor_with(monkeypatch, {"gateway": free_port()}, "--require-free-ports")
    assert code == 0
    assert "make run:" not in out


def test_make_run_checks_the_ports_before_it_starts_anything() -> None:
    makefile = (ROOT / "Makefile").read_text()
    run = makefile.split("\nrun:", 1)[1].split("\n\n", 1)[0]
    assert run.index("doctor --require-free-ports") < run.index("honcho")
