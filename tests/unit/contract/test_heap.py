"""The batch scans' memory: a chunk-sized block freed and made again reuses the heap's pages."""

from __future__ import annotations

import subprocess
import sys

import pytest

# A fresh interpreter each time: the tuning is process-wide, and this one has it already.
FAULTS_OF_TEN_BLOCKS = """
import resource, sys
import numpy as np
if sys.argv[1] == "tuned":
    from worker.contract.heap import keep_freed_memory_for_reuse
    assert keep_freed_memory_for_reuse()
block = 4 * 1024 * 1024

def scan():  # a chunk's scan: a few arrays of a few MB alive at once, then all freed
    arrays = [np.ones(block, dtype=np.uint8) for _ in range(6)]
    del arrays

scan()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    scan()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", FAULTS_OF_TEN_BLOCKS, mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_freed_chunk_sized_block_is_reused_without_faulting_its_pages_in_again() -> None:
    untuned, tuned = faults("plain"), faults("tuned")
    pages = 10 * 6 * 4 * 1024 * 1024 // 4096  # ten scans' arrays
    assert untuned > pages // 4  # glibc's defaults return them, and fault them in again
    assert tuned < pages // 20
