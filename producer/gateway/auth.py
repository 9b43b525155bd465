"""The gateway's API keys: who may ask, and where the gateway may listen without them.

    keys = ApiKeys(settings.gateway_api_keys)        # ZIPSCORE_GATEWAY_API_KEYS(_FILE)
    @app.get("/zipcodes/{zipcode}", dependencies=[Depends(keys.dependency())])
    curl -H "Authorization: Bearer $KEY" http://gateway:5000/zipcodes/9000

With keys configured, every route but liveness, readiness and the docs needs one: a request
without a valid `Authorization: Bearer <key>` is 401 UNAUTHORIZED with `WWW-Authenticate:
Bearer`, before its handler runs (an upload is never read). A presented key is compared with
every configured one through `hmac.compare_digest` on SHA-256 digests, so neither its
length nor how much of it matched shows in the time taken; a key is never logged nor echoed.
The matching key's id (a digest prefix) is left in `request.state.key_id`, for the per-key
batch limit.

Without keys the gateway answers anyone, so `zipscore serve` refuses to listen beyond
loopback without them (`refuse_exposure`), as Flower's guard does.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from producer.gateway.limits import Refusal
from worker.contract.errors import ErrorCode, echo
from worker.contract.listen_addresses import UnresolvableAddress, bound_addresses, is_loopback
from worker.contract.settings import SettingsError

CHALLENGE = 'Bearer realm="zipscore"'
# Reads the header only (auto_error off: the refusal is ours, in the contract's body); also
# what puts the bearer scheme in the OpenAPI document of the routes that need a key.
_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key of ZIPSCORE_GATEWAY_API_KEYS(_FILE): `Authorization: Bearer <key>`.",
)


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


class ApiKeys:
    """The configured keys (as digests); empty means the gateway needs none."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(_digest(key) for key in keys)

    def __bool__(self) -> bool:
        return bool(self._digests)

    def identify(self, presented: str) -> str | None:
        """The id of the configured key `presented` is, or None."""
        given = _digest(presented)
        found = None
        for digest in self._digests:  # every key compared: the time says nothing of which
            if hmac.compare_digest(digest, given):
                found = digest
        return None if found is None else found.hex()[:12]

    def dependency(self) -> Callable[..., Awaitable[str]]:
        """A FastAPI dependency: the caller's key id (also set as `request.state.key_id`),
        or 401 (Refusal) without a valid key."""

        async def authorized(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
        ) -> str:
            if credentials is None:
                raise Refusal(
                    ErrorCode.UNAUTHORIZED,
                    "an API key is needed: send Authorization: Bearer <key>",
                    {"WWW-Authenticate": CHALLENGE},
                )
            key_id = self.identify(credentials.credentials)
            if key_id is None:
                raise Refusal(
                    ErrorCode.UNAUTHORIZED,
                    "the API key is not valid",
                    {"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'},
                )
            request.state.key_id = key_id
            return key_id

        return authorized


def refuse_exposure(host: str, port: int, keys: ApiKeys) -> None:
    """Raise SettingsError when the gateway would listen beyond loopback without API keys.

    `host` is resolved as uvicorn binds it (getaddrinfo, passive): every address it stands
    for must be loopback unless keys are configured.
    """
    if keys:
        return
    try:
        addresses = bound_addresses(host, port)
    except UnresolvableAddress:
        raise SettingsError(f"cannot resolve the gateway's address {echo(host)}") from None
    exposed = [address for address in addresses if not is_loopback(address)]
    if exposed:
        raise SettingsError(
            f"refusing to serve on {echo(host)} port {port} (it would listen on "
            f"{', '.join(exposed[:4])}) without API keys: set ZIPSCORE_GATEWAY_API_KEYS_FILE"
            " (or ZIPSCORE_GATEWAY_API_KEYS), or bind it to 127.0.0.1"
        )
