"""Flower's configuration, read from the working directory by `celery -A worker flower`.

Flower alone would listen on every interface; when no address was given (option or
`FLOWER_ADDRESS`), this file makes it loopback. The safety check itself is not here: it runs
on Flower's final options whatever the config file (`worker.flower.guard`).

`ZIPSCORE_FLOWER_BASIC_AUTH_FILE` names a file holding `user:password` (a container secret),
so the login is in no environment variable; `FLOWER_BASIC_AUTH` or `--basic-auth` still win.
(Flower refuses any `FLOWER_*` variable it does not know, hence the `ZIPSCORE_` name.)
"""

import os
from pathlib import Path

from tornado.options import options

from worker.contract.secret_files import read_secret
from worker.flower import quiet_start as flower_quiet_start

# Read while Flower parses: the environment and the command line are already applied, and
# an address given on the command line is applied again after this file.
if not options.address and not options.unix_socket:
    address = "127.0.0.1"

_login_file = os.environ.get("ZIPSCORE_FLOWER_BASIC_AUTH_FILE")
if _login_file and not options.basic_auth:
    basic_auth = [read_secret(Path(_login_file))]

# The first inspections run before the workers are up: INFO, not WARNING, while starting.
flower_quiet_start.install()
