"""Lookups one after another, each one's answer and timing: `python -m tests.support.lookup_stream`.

    python -m tests.support.lookup_stream COUNT FIRST [SECONDS]

asks COUNT lookups (zipcodes FIRST, FIRST+1, ... wrapping within 1000..9999) through the
producer's client, or keeps asking for SECONDS when given (COUNT then caps nothing), and
prints one JSON list: `[zipcode, started, ended, answer]` per lookup, where answer is the
risk factor, "" for a known-unknown zipcode, or "error:<CODE>". Times are Unix seconds.
Its settings come from the environment, as any producer's do.
"""

from __future__ import annotations

import json
import sys
import time

from producer.client import Client
from worker.contract.errors import ZipscoreError


def main(argv: list[str]) -> int:
    count, first = int(argv[0]), int(argv[1])
    until = time.time() + float(argv[2]) if len(argv) > 2 else None
    client = Client()
    answers: list[list[object]] = []
    i = 0
    while (until is None and i < count) or (until is not None and time.time() < until):
        zipcode = 1000 + (first - 1000 + i) % 9000
        started = time.time()
        try:
            found = client.lookup(zipcode, timeout=5)
            answer = found.risk_factor if found.exists and found.risk_factor else ""
        except ZipscoreError as exc:
            answer = f"error:{exc.code.value}"
        answers.append([zipcode, started, time.time(), answer])
        i += 1
    print(json.dumps(answers))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
