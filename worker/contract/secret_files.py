"""Passwords read from files (Docker or Kubernetes secrets) and set into connection URLs.

`ZIPSCORE_DATABASE_PASSWORD_FILE` and `ZIPSCORE_REDIS_PASSWORD_FILE` name a file holding one
password, so the password is never in an environment variable, a command line or a compose
file. worker/contract/settings/ reads them once and sets the password into the URLs that
have none.
`ZIPSCORE_GATEWAY_API_KEYS_FILE` names a file of the gateway's API keys, one a line.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

MAX_SECRET_BYTES = 4_096
# The placeholders of .env.example and docs: a deployment that kept one is refused.
PLACEHOLDERS = frozenset({"change-me", "changeme", "password"})
MIN_API_KEY_CHARS = 16  # `openssl rand -hex 24` gives 48


def read_secret(path: Path) -> str:
    """The secret in `path`, without its trailing line break; ValueError says what is wrong."""
    raw = _read_text(path)
    secret = raw.rstrip("\r\n")
    if not secret or "\n" in secret:
        raise ValueError("the secret file must hold one non-empty line")
    refuse_placeholder(secret)
    return secret


def read_api_keys(path: Path) -> tuple[str, ...]:
    """The API keys in `path`, one a line (blank lines and `#` comments skipped), each
    checked by `check_api_key`; ValueError says what is wrong, never quoting a key."""
    lines = (line.strip() for line in _read_text(path).splitlines())
    keys = tuple(line for line in lines if line and not line.startswith("#"))
    if not keys:
        raise ValueError("the key file holds no key")
    for number, key in enumerate(keys, 1):
        try:
            check_api_key(key)
        except ValueError as exc:
            raise ValueError(f"key {number} {exc}") from None
    return keys


def check_api_key(key: str) -> None:
    """Refuse a key too short to be secret, one with blanks in it, or a placeholder."""
    if len(key) < MIN_API_KEY_CHARS:
        raise ValueError(
            f"is shorter than {MIN_API_KEY_CHARS} characters (make one with openssl rand -hex 24)"
        )
    if any(char.isspace() or not char.isprintable() for char in key):
        raise ValueError("holds a blank or a control character")
    refuse_placeholder(key)


def _read_text(path: Path) -> str:
    """The UTF-8 text of a small secret file; ValueError says what is wrong."""
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
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the secret file is not UTF-8 text") from None


def refuse_placeholder(secret: str) -> None:
    """Refuse the example passwords shipped in .env.example and the docs."""
    if secret.lower() in PLACEHOLDERS:
        raise ValueError("is still the example placeholder: set a real password")


def url_password(url: str) -> str | None:
    """The password in a connection URL, if it has one."""
    return urlsplit(url).password


def with_password(url: str, password: str) -> str:
    """`url` with `password` set (the URL must not already hold one).

    The rest of the URL is kept as written: a percent-encoded user name stays encoded once,
    and a multi-host Postgres URL (`h1:5432,h2:5432`) keeps every host.
    """
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if not at:
        userinfo, hosts = "", parts.netloc
    if ":" in userinfo:
        raise ValueError("has a password in the URL and in a file: keep it in one place")
    netloc = f"{userinfo}:{quote(password, safe='')}@{hosts}"
    return urlunsplit(parts._replace(netloc=netloc))
