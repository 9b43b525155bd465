"""Flower starts only with authentication, unless it listens on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


@pytest.mark.parametrize(
    "extra",
    [
        ["--address=0.0.0.0"],
        ["--address", "0.0.0.0"],
        ["--port=6000", "--address=10.0.0.1"],
        ["--address=127.0.0.1", "--address=0.0.0.0"],
    ],
)
def test_options_cannot_bypass_the_check(extra: list[str]) -> None:
    with pytest.raises(UnsafeFlower, match="without authentication"):
        flower_command({}, extra)


def test_the_last_address_given_is_the_one_checked() -> None:
    command = flower_command({"FLOWER_ADDRESS": "0.0.0.0"}, ["--address=127.0.0.1"])
    assert "--address=127.0.0.1" in command


@pytest.mark.parametrize("auth", [":", "user:", ":password", "a:b,:"])
def test_empty_user_or_password_is_not_authentication(auth: str) -> None:
    with pytest.raises(UnsafeFlower, match="non-empty"):
        flower_command({"FLOWER_ADDRESS": "0.0.0.0", "FLOWER_BASIC_AUTH": auth})


def test_basic_auth_given_as_an_option_counts() -> None:
    assert flower_command({}, ["--address=0.0.0.0", "--basic-auth=a:b"])


def test_another_config_file_is_refused() -> None:
    with pytest.raises(UnsafeFlower, match="--conf"):
        flower_command({}, ["--conf=/tmp/elsewhere.py"])


def test_plain_celery_flower_refuses_an_open_address_without_auth() -> None:
    """`celery -A worker flower` reads flowerconfig.py from the repository root."""
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    done = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "worker", "flower", "--address=0.0.0.0"],
        cwd=root, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "without authentication" in done.stderr
