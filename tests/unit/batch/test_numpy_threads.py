"""numpy's OpenBLAS starts no thread in a zipscore process (worker/__init__.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

THREADS_AFTER_NUMPY = """
import os
import producer.cli.main  # what the CLI imports first, then the batch scans' numpy
import producer.batch.fast_scan
print(len(os.listdir("/proc/self/task")))
"""


def threads(environment: dict[str, str]) -> int:
    done = subprocess.run(
        [sys.executable, "-c", THREADS_AFTER_NUMPY],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="Linux's /proc")
def test_numpy_starts_no_blas_thread_unless_the_environment_asks_for_some() -> None:
    plain = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    assert threads(plain) == 1
    assert threads({**plain, "OPENBLAS_NUM_THREADS": "4"}) > 1  # a deployment's own choice
