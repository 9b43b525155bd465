"""Flower's configuration, read from the working directory by `celery -A worker flower`.

Flower alone would listen on every interface with no login; this file makes loopback the
default and refuses, before Flower starts, any address beyond loopback without
authentication (the check of `worker.flower_guard`).
"""

import os
import sys

from worker.flower_guard import UnsafeFlower, check, effective_options

_flower_args = sys.argv[sys.argv.index("flower") + 1 :] if "flower" in sys.argv else []
try:
    _options = effective_options(os.environ, _flower_args)
    check(_options)
except UnsafeFlower as _refusal:
    print(f"flower: {_refusal}", file=sys.stderr)
    raise SystemExit(1) from None

address = _options["address"]
port = int(_options["port"])
