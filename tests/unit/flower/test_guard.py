"""Flower starts only with authentication, unless it listens on loopback.

The options are parsed by Flower's own code (`flower.command.apply_env_options` and
`apply_options`, i.e. tornado.options) into a fresh parser, exactly as `celery -A worker
flower` parses them; the guard then judges what Flower settled on.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import click
import flower.command
import pytest
import tornado.options
from tornado.options import OptionParser

from tests.support.paths import ROOT
from worker.contract.listen_addresses import is_loopback
from worker.flower.guard import (
    UnsafeFlower,
    check,
    check_flower_options,
    flower_command,
    refuse_unsafe_flower,
)

Parse = Callable[..., OptionParser]


def fresh_flower_parser() -> OptionParser:
    """A parser holding Flower's option definitions, with no value set yet."""
    parser = OptionParser()
    for name, option in tornado.options.options._options.items():
        if name in parser:  # `help`, which every parser defines
            continue
        parser.define(
            option.name,
            default=option.default,
            type=option.type,
            help=option.help,
            multiple=option.multiple,
        )
    return parser


@pytest.fixture
def flower_parse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Parse:
    """Parse argv, FLOWER_* variables and the config file with Flower's own functions."""

    def parse(
        argv: Sequence[str] = (), env: Mapping[str, str] | None = None, cwd: Path = tmp_path
    ) -> OptionParser:
        parser = fresh_flower_parser()
        for name in [name for name in os.environ if name.startswith("FLOWER_")]:
            monkeypatch.delenv(name)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        monkeypatch.chdir(cwd)
        # flower.command and flowerconfig.py use the global parser; point them at this one.
        monkeypatch.setattr(tornado.options, "options", parser)
        monkeypatch.setattr(flower.command, "options", parser)
        monkeypatch.setattr(flower.command, "parse_command_line", parser.parse_command_line)
        monkeypatch.setattr(flower.command, "parse_config_file", parser.parse_config_file)
        flower.command.apply_env_options()
        flower.command.apply_options("celery", list(argv))
        return parser

    return parse


@pytest.mark.parametrize(
    ("address", "loopback"),
    [("127.0.0.1", True), ("127.8.0.1", True), ("::1", True), ("fe80::1%lo", False),
     ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.5", False),
     ("flower.internal", False)],
)  # fmt: skip
def test_loopback_detection_of_literal_addresses(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


@pytest.mark.parametrize(
    "argv",
    [
        ["-address=0.0.0.0"],  # a single dash: the bypass of the old guard
        ["--address=0.0.0.0"],
        ["---address=0.0.0.0"],
        ["-address=127.0.0.1", "-address=0.0.0.0"],  # the last one wins
        ["--address=127.0.0.1", "-port=6000", "-address=10.0.0.1"],
        ["--address=::"],
        ["--address="],  # empty: Tornado listens on every interface
        ["--address=0"],  # getaddrinfo reads 0 as 0.0.0.0
    ],
)
def test_every_option_form_is_judged_as_flower_reads_it(
    flower_parse: Parse, argv: list[str]
) -> None:
    options = flower_parse(argv)
    with pytest.raises(UnsafeFlower, match="without authentication"):
        check_flower_options(options)


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--address=0.0.0.0", "--address=127.0.0.1"], {}),
        (["-address=127.0.0.1"], {"FLOWER_ADDRESS": "0.0.0.0"}),  # the command line wins
        (["--address=localhost"], {}),
        (["--address=::1"], {}),
        ([], {"FLOWER_ADDRESS": "127.0.0.2"}),
        (["--unix-socket=/tmp/flower.sock"], {"FLOWER_ADDRESS": "0.0.0.0"}),
        (["--address=0.0.0.0", "--basic_auth=a:b"], {}),
        (["-address=0.0.0.0", "-basic-auth=a:b,c:d"], {}),
        ([], {"FLOWER_ADDRESS": "0.0.0.0", "FLOWER_BASIC_AUTH": "a:b"}),
        ([], {"FLOWER_ADDRESS": "0.0.0.0", "FLOWER_AUTH": ".*@example.com"}),
    ],
)
def test_loopback_or_authentication_may_start(
    flower_parse: Parse, argv: list[str], env: dict[str, str]
) -> None:
    check_flower_options(flower_parse(argv, env))


@pytest.mark.parametrize("argv", [["--address", "0.0.0.0"], ["-address", "0.0.0.0"]])
def test_a_value_after_a_space_is_refused_by_flower_itself(
    flower_parse: Parse, argv: list[str]
) -> None:
    """Tornado needs `=`: Flower drops the lone value and stops on the bare option, so it
    never starts (the address is not taken from the next word)."""
    with pytest.raises(tornado.options.Error, match="'address' requires a value"):
        flower_parse(argv)


def test_the_environment_counts(flower_parse: Parse) -> None:
    options = flower_parse([], {"FLOWER_ADDRESS": "0.0.0.0", "FLOWER_PORT": "6000"})
    with pytest.raises(UnsafeFlower, match=re.escape("'0.0.0.0' port 6000")):
        check_flower_options(options)


def test_flowers_own_default_is_every_interface(flower_parse: Parse) -> None:
    """Outside the repository (no flowerconfig.py) nothing makes the address loopback."""
    with pytest.raises(UnsafeFlower, match="all interfaces"):
        check_flower_options(flower_parse([]))


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["-conf={conf}"], {}),
        (["--conf={conf}"], {}),
        ([], {"FLOWER_CONF": "{conf}"}),
        (["--conf={conf}"], {"FLOWER_ADDRESS": "127.0.0.1"}),  # the file overrides the env
    ],
)
def test_an_address_from_a_config_file_is_judged(
    flower_parse: Parse, tmp_path: Path, argv: list[str], env: dict[str, str]
) -> None:
    conf = tmp_path / "elsewhere.py"
    conf.write_text("address = '0.0.0.0'\n")
    argv = [arg.format(conf=conf) for arg in argv]
    env = {name: value.format(conf=conf) for name, value in env.items()}
    with pytest.raises(UnsafeFlower, match=re.escape("'0.0.0.0'")):
        check_flower_options(flower_parse(argv, env))


def test_zipscores_config_file_makes_loopback_the_default(flower_parse: Parse) -> None:
    options = flower_parse([], cwd=ROOT)
    assert options.address == "127.0.0.1"
    check_flower_options(options)


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["-address=0.0.0.0"], {}),
        (["--address="], {}),
        ([], {"FLOWER_ADDRESS": "0.0.0.0"}),
    ],
)
def test_zipscores_config_file_keeps_a_given_address(
    flower_parse: Parse, argv: list[str], env: dict[str, str]
) -> None:
    with pytest.raises(UnsafeFlower, match="without authentication"):
        check_flower_options(flower_parse(argv, env, cwd=ROOT))


@pytest.mark.parametrize("auth", [":", "user:", ":password", "a:b,:", "justapassword", ""])
def test_empty_user_or_password_is_not_authentication(flower_parse: Parse, auth: str) -> None:
    options = flower_parse([f"--basic-auth={auth}", "--address=0.0.0.0"])
    with pytest.raises(UnsafeFlower, match="non-empty"):
        check_flower_options(options)


def test_a_hostname_is_judged_by_every_address_it_resolves_to() -> None:
    check(address="localhost", port=5555, basic_auth=None, auth="")
    with pytest.raises(UnsafeFlower, match="cannot resolve"):
        check(address="no-such-host.invalid", port=5555, basic_auth=None, auth="")


def test_the_signal_refuses_in_flower_with_one_line(
    flower_parse: Parse, capsys: pytest.CaptureFixture[str]
) -> None:
    flower_parse(["-address=0.0.0.0"])
    with click.Context(flower.command.flower), pytest.raises(SystemExit) as exit_info:
        refuse_unsafe_flower()
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("flower: refusing to start Flower on '0.0.0.0'")


def test_the_signal_leaves_other_celery_commands_alone(flower_parse: Parse) -> None:
    flower_parse(["-address=0.0.0.0"])
    with click.Context(click.Command("worker")):
        refuse_unsafe_flower()
    refuse_unsafe_flower()  # no command at all (a producer importing the app)


def test_the_guard_runs_flower_on_the_app_with_the_options_as_given() -> None:
    assert flower_command(["-port=6000"]) == [
        sys.executable, "-m", "celery", "-A", "worker", "flower", "-port=6000"
    ]  # fmt: skip


def test_the_example_password_is_not_authentication(flower_parse: Parse) -> None:
    options = flower_parse([], {"FLOWER_BASIC_AUTH": "admin:change-me", "FLOWER_ADDRESS": "::"})
    with pytest.raises(UnsafeFlower, match="example placeholder"):
        check_flower_options(options)


def test_the_login_can_come_from_a_secret_file(
    flower_parse: Parse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given the login in a file, as compose mounts its secret, and an open address
    login = tmp_path / "flower_basic_auth"
    login.write_text("ops:9f3c-long-random\n")
    monkeypatch.setenv("ZIPSCORE_FLOWER_BASIC_AUTH_FILE", str(login))
    # When Flower parses its options with zipscore's config file
    options = flower_parse(["--address=0.0.0.0"], cwd=ROOT)
    # Then the file's login is Flower's basic auth, and the guard lets it start
    assert options.basic_auth == ["ops:9f3c-long-random"]
    check_flower_options(options)


def test_a_given_login_wins_over_the_secret_file(
    flower_parse: Parse, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    login = tmp_path / "flower_basic_auth"
    login.write_text("ops:from-the-file\n")
    monkeypatch.setenv("ZIPSCORE_FLOWER_BASIC_AUTH_FILE", str(login))
    options = flower_parse([], {"FLOWER_BASIC_AUTH": "ops:from-the-env"}, cwd=ROOT)
    assert options.basic_auth == ["ops:from-the-env"]
