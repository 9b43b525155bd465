"""Flower starts only with authentication, unless it listens on loopback."""

from __future__ import annotations

import sys

import pytest

from worker.flower_guard import UnsafeFlower, flower_command, is_loopback


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("localhost", True),
     ("0.0.0.0", False), ("", False), ("10.0.0.5", False), ("flower.internal", False)],
)  # fmt: skip
def test_loopback_detection(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_default_is_loopback_without_auth() -> None:
    assert flower_command({})[0] == sys.executable
    assert flower_command({})[1:] == [
        "-m", "celery", "-A", "worker", "flower", "--address=127.0.0.1", "--port=5555"
    ]  # fmt: skip


@pytest.mark.parametrize("address", ["0.0.0.0", "", "10.1.2.3"])
def test_open_address_without_auth_is_refused(address: str) -> None:
    with pytest.raises(UnsafeFlower, match="without authentication"):
        flower_command({"FLOWER_ADDRESS": address})


def test_open_address_with_basic_auth_is_allowed() -> None:
    command = flower_command(
        {"FLOWER_ADDRESS": "0.0.0.0", "FLOWER_PORT": "6000", "FLOWER_BASIC_AUTH": "a:b"},
        ["--persistent=True"],
    )
    assert command[-3:] == ["--address=0.0.0.0", "--port=6000", "--persistent=True"]


def test_malformed_basic_auth_is_refused() -> None:
    with pytest.raises(UnsafeFlower, match="user:password"):
        flower_command({"FLOWER_ADDRESS": "0.0.0.0", "FLOWER_BASIC_AUTH": "justapassword"})


def test_oauth_counts_as_authentication() -> None:
    assert flower_command({"FLOWER_ADDRESS": "0.0.0.0", "FLOWER_AUTH": ".*@example.com"})
