"""Backup copies of a chunk that runs far past its peers (a worker killed mid-chunk).

    pace = ChunkPace()
    pace.completed(seconds)          # each chunk's time from send to its notice
    if age > pace.backup_after():    # a chunk in flight that long gets one backup copy
        ...

A SIGKILLed worker reports nothing: the chunks it had started or prefetched stay PENDING or
STARTED until the chunk deadline. A copy of such a chunk, sent again once it has run
`BACKUP_FACTOR` times the median chunk time (and at least `BACKUP_FLOOR` seconds), is taken
by a live worker; a copy lost in turn (its worker killed too) gets another, up to
`MAX_BACKUPS` an attempt. The first copy to finish writes the chunk's output; the other writes the
same bytes under the same key (same input, same pinned table version), and the producer
writes each chunk once, in order. When nothing fails, no chunk runs that long: no copies.
"""

from __future__ import annotations

import statistics
from collections import deque

MAX_BACKUPS = 3  # copies of one chunk per attempt (a copy's worker may be killed too)
BACKUP_FACTOR = 4.0
BACKUP_FLOOR = 1.0  # seconds: below it, a slow chunk is more likely a busy machine
SAMPLES = 64  # the chunk times the median is taken over (the latest ones)


class ChunkPace:
    """The recent chunk times, and how long a chunk may run before a backup is sent."""

    def __init__(self) -> None:
        self.times: deque[float] = deque(maxlen=SAMPLES)

    def completed(self, seconds: float) -> None:
        self.times.append(seconds)

    def backup_after(self) -> float:
        median = statistics.median(self.times) if self.times else 0.0
        return max(BACKUP_FACTOR * median, BACKUP_FLOOR)


def due(sent: int, waiting: float, pace: ChunkPace) -> bool:
    """Whether a chunk with `sent` backup copies so far, its latest send (or copy) `waiting`
    seconds ago, gets another copy now."""
    return sent < MAX_BACKUPS and waiting > pace.backup_after()
