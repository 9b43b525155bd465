"""A producer process for the drills: `python -m tests.support.drill_producer send 200 5000`.

    send N FIRST        send N lookups (zipcodes FIRST..) without waiting; prints their ids
    lookups N FIRST     ask N lookups through the client, one after another; prints a summary
    raw NAME ID ARGS    send task NAME with id ID and the JSON list ARGS, as it is (no checks)

Its settings come from the environment, as any producer's do.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter

from producer.client import Client
from worker.contract.errors import ZipscoreError


def zipcode(first: int, i: int) -> int:
    return 1000 + (first - 1000 + i) % 9000


def send(count: int, first: int) -> dict[str, object]:
    client = Client()
    ids = [
        client.app.send_task("zipcodes.lookup", args=(zipcode(first, i),)).id for i in range(count)
    ]
    return {"ids": ids}


def lookups(count: int, first: int) -> dict[str, object]:
    client = Client()
    codes: Counter[str] = Counter()
    slowest = 0.0
    for i in range(count):
        started = time.monotonic()
        try:
            client.lookup(zipcode(first, i))
            codes["ok"] += 1
        except ZipscoreError as exc:
            codes[exc.code.value] += 1
        slowest = max(slowest, time.monotonic() - started)
    return {"codes": dict(codes), "slowest": slowest}


def main(argv: list[str]) -> int:
    if argv[0] == "raw":
        name, task_id, args = argv[1], argv[2], json.loads(argv[3])
        Client().app.send_task(name, args=args, task_id=task_id)
        print(json.dumps({"ids": [task_id]}))
        return 0
    command, count, first = argv[0], int(argv[1]), int(argv[2])
    result = send(count, first) if command == "send" else lookups(count, first)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
