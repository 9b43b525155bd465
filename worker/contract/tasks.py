"""The tasks producers may send, by name, and the queue each name goes to.

Names are namespaced (`zipcodes.*`, `batch.*`, `index.*`), so a rename never strands a queued
message and a producer never imports the code that runs them.
"""

from __future__ import annotations

from typing import Final

LOOKUPS: Final = "lookups"
BATCH: Final = "batch"
INDEX: Final = "index"
QUEUES: Final = (LOOKUPS, BATCH, INDEX)

LOOKUP: Final = "zipcodes.lookup"
BY_RISK_FACTOR: Final = "zipcodes.by_risk_factor"
PING: Final = "health.ping"
PIN_TABLE: Final = "batch.pin_table"
SCORE_CHUNK: Final = "batch.score_chunk"
INDEX_LATEST: Final = "index.latest"
INDEX_REFRESH: Final = "index.refresh"

ROUTES: Final = {
    "zipcodes.*": {"queue": LOOKUPS},
    "batch.*": {"queue": BATCH},
    "index.*": {"queue": INDEX},
}
DEFAULT_QUEUE: Final = LOOKUPS  # `health.ping` rides with the lookups it vouches for
