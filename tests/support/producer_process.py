"""The `zipscore` CLI as a separate process, as a user or an upstream service runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def producer(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start `zipscore *args` with `env`; its output is read as text from its pipes."""
    exe = Path(sys.executable).parent / "zipscore"
    return subprocess.Popen(
        [str(exe), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
