"""The installed `zipscore` console script, run as a user runs it."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT


def executable() -> str:
    """The `zipscore` script of this interpreter's environment."""
    return shutil.which("zipscore", path=str(Path(sys.executable).parent)) or "zipscore"


def console(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the installed `zipscore` console script to its end."""
    return subprocess.run(
        [executable(), *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
        check=False,
    )  # fmt: skip


def console_process(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """Start the installed `zipscore` console script; the caller waits for it."""
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "zipscore"), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
