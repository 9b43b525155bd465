"""Passwords read from files (Docker or Kubernetes secrets) and set into connection URLs.

`ZIPSCORE_DATABASE_PASSWORD_FILE` and `ZIPSCORE_REDIS_PASSWORD_FILE` name a file holding one
password, so the password is never in an environment variable, a command line or a compose
file. worker/settings.py reads them once and sets the password into the URLs that have none.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

MAX_SECRET_BYTES = 4_096
# The placeholders of .env.example and docs: a deployment that kept one is refused.
PLACEHOLDERS = frozenset({"change-me", "changeme", "password"})


def read_secret(path: Path) -> str:
    """The secret in `path`, without its trailing line break; ValueError says what is wrong."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise ValueError(
            f"cannot read the secret file ({exc.strerror or type(exc).__name__})"
        ) from None
    if len(raw) > MAX_SECRET_BYTES:
        raise ValueError(f"the secret file is over {MAX_SECRET_BYTES} bytes")
    try:
        secret = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ValueError("the secret file is not UTF-8 text") from None
    if not secret or "\n" in secret:
        raise ValueError("the secret file must hold one non-empty line")
    refuse_placeholder(secret)
    return secret


def refuse_placeholder(secret: str) -> None:
    """Refuse the example passwords shipped in .env.example and the docs."""
    if secret.lower() in PLACEHOLDERS:
        raise ValueError("is still the example placeholder: set a real password")


def url_password(url: str) -> str | None:
    """The password in a connection URL, if it has one."""
    return urlsplit(url).password


def with_password(url: str, password: str) -> str:
    """`url` with `password` set (the URL must not already hold one)."""
    parts = urlsplit(url)
    if parts.password is not None:
        raise ValueError("has a password in the URL and in a file: keep it in one place")
    user = quote(parts.username, safe="") if parts.username else ""
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}:{quote(password, safe='')}@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc))
