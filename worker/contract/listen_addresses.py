"""Where a server would listen: whether an address is loopback, and what a host name binds.

Flower and the gateway refuse to listen beyond loopback without authentication; both judge
an address by the sockets it would really bind.
"""

from __future__ import annotations

import ipaddress
import socket


class UnresolvableAddress(ValueError):
    """The address does not resolve to anything a server could bind."""


def is_loopback(address: str) -> bool:
    """True for a literal loopback IP address (an IPv6 scope id is ignored)."""
    try:
        return ipaddress.ip_address(address.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def bound_addresses(address: str, port: int) -> list[str]:
    """The addresses a server binding `address` (getaddrinfo, passive) would listen on.

    Tornado's `bind_sockets(port, address)` and uvicorn resolve an address this way.

    Raises:
        UnresolvableAddress: the address does not resolve (the server could not start either).
    """
    family = socket.AF_UNSPEC if socket.has_ipv6 else socket.AF_INET
    try:
        found = socket.getaddrinfo(
            address or None, port, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as exc:
        raise UnresolvableAddress(type(exc).__name__) from None
    return sorted({str(sockaddr[0]) for *_, sockaddr in found})
