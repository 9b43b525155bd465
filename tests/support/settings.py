"""Settings from the given values and the environment alone, never a .env file."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from worker.contract.settings import Settings

MakeSettings = Callable[..., Settings]


def make_settings(**overrides: Any) -> Settings:
    """`Settings` as the process environment and `overrides` give them (no .env file read)."""
    return Settings(_env_file=None, **overrides)  # type: ignore[call-arg]
