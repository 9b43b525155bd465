"""Flower's configuration, read from the working directory by `celery -A worker flower`.

Flower alone would listen on every interface; when no address was given (option or
`FLOWER_ADDRESS`), this file makes it loopback. The safety check itself is not here: it runs
on Flower's final options whatever the config file (`worker.flower_guard`).
"""

from tornado.options import options

# Read while Flower parses: the environment and the command line are already applied, and
# an address given on the command line is applied again after this file.
if not options.address and not options.unix_socket:
    address = "127.0.0.1"
