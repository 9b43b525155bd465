"""tests/support/netns.py: test hosts come and go without leaving anything behind.

Needs root and iproute2 (skipped otherwise). Each test checks by the network's token that no
namespace, interface or process of it is left, after an exception in the block, after
SIGTERM to the process holding it, and (by the next network's sweep) after SIGKILL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import netns

pytestmark = pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))
ROOT = Path(__file__).resolve().parents[3]
HOLDER = """
import sys, time
from tests.support.netns import Network
with Network(2) as net:
    net.hosts[0].spawn(["sleep", "300"]); net.spawn(["sleep", "300"])
    print(net.token, flush=True)
    time.sleep(300)
"""


def reaches(host: netns.Host, address: str, port: int) -> bool:
    probe = f"import socket; socket.create_connection(({address!r}, {port}), 1)"
    return host.run([sys.executable, "-c", probe], timeout=10).returncode == 0


def test_an_exception_in_the_block_leaves_nothing_behind() -> None:
    net = netns.Network(2)
    started = []

    def failing_test() -> None:
        with net:
            started.append(net.hosts[1].spawn(["sleep", "300"]))
            started.append(net.spawn(["sleep", "300"]))
            assert net.leftovers()  # namespaces, links and processes exist meanwhile
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_test()
    assert net.leftovers() == []
    assert [process.poll() is not None for process in started] == [True, True]


def test_hosts_reach_the_gateway_until_their_link_is_cut() -> None:
    with netns.Network(2) as net:
        port = net.forward(1, "127.0.0.1")  # any listener on the gateway will do
        first, second = net.hosts
        assert first.address != second.address
        assert reaches(first, net.gateway, port)
        assert reaches(second, net.gateway, port)
        net.cut(second)
        assert not reaches(second, net.gateway, port)
        assert reaches(first, net.gateway, port)
        net.restore(second)
        assert reaches(second, net.gateway, port)
    assert net.leftovers() == []


def _holder() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    token = process.stdout.readline().strip()
    assert token, "the holder did not start its network"
    return process, token


def _left(token: str) -> list[str]:
    probe = netns.Network(0, token=token)  # not opened: only asks what exists
    return probe.leftovers()


def test_sigterm_to_the_holder_cleans_up() -> None:
    process, token = _holder()
    assert _left(token)
    process.send_signal(signal.SIGTERM)
    process.wait(30)
    assert _left(token) == []


def test_a_holder_killed_with_sigkill_is_swept_by_the_next_network() -> None:
    process, token = _holder()
    process.kill()
    process.wait(10)
    time.sleep(0.2)
    assert _left(token)  # nothing could clean up
    assert any(token in name for name in netns.sweep_stale())
    assert _left(token) == []
