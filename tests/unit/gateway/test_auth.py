"""API keys: which key is one, 401 on every guarded route, the open routes, the bearer
scheme in the schema, where the gateway may listen without keys."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from producer.client import Client
from producer.gateway import app as gateway
from producer.gateway.auth import ApiKeys, refuse_exposure
from tests.support.gateway import (
    KEY,
    OTHER_KEY,
    REQUESTS,
    answer_pings,
    auth,
    error,
    finish,
    operations,
)
from worker.contract.settings import SettingsError

# -- API keys ---------------------------------------------------------------------------


def test_a_key_is_identified_only_when_it_is_one_of_the_keys() -> None:
    keys = ApiKeys([KEY, OTHER_KEY])
    assert keys.identify(KEY)
    assert keys.identify(OTHER_KEY)
    assert keys.identify(KEY) != keys.identify(OTHER_KEY)
    assert KEY not in str(keys.identify(KEY))
    for wrong in ("", KEY[:-1], KEY + "x", KEY.upper(), " " + KEY):
        assert keys.identify(wrong) is None, wrong
    assert not ApiKeys([])


@pytest.mark.parametrize(
    ("header", "challenge"),
    [
        (None, 'Bearer realm="zipscore"'),
        (f"Basic {KEY}", 'Bearer realm="zipscore"'),
        ("Bearer", 'Bearer realm="zipscore"'),
        ("Bearer not-one-of-the-keys-at-all", 'Bearer realm="zipscore", error="invalid_token"'),
    ],
)
def test_without_a_valid_key_every_guarded_route_is_401(
    keyed: TestClient, keyed_client: Client, header: str | None, challenge: str
) -> None:
    headers = {} if header is None else {"Authorization": header}
    document = keyed.get("/openapi.json").json()
    guarded = [(m, p) for m, p, op in operations(document) if op.get("security")]
    assert len(guarded) == 7
    for method, path in guarded:
        url, body = REQUESTS[(method, path)]
        response = keyed.request(method, url, headers=headers, content=body)
        assert error(response) == (401, "UNAUTHORIZED"), path
        assert response.headers["www-authenticate"] == challenge
        assert KEY not in response.text
    assert list(keyed_client.settings.gateway_upload_dir.glob("*")) == []  # no upload read


def test_liveness_readiness_and_the_docs_need_no_key(
    keyed: TestClient, keyed_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer_pings(keyed_client, monkeypatch)
    for url in ("/healthz", "/readyz", "/docs", "/redoc", "/openapi.json"):
        assert keyed.get(url).status_code == 200, url
    assert keyed.head("/healthz").status_code == 200


def test_with_a_key_the_routes_answer(keyed: TestClient) -> None:
    for key in (KEY, OTHER_KEY):
        response = keyed.get("/zipcodes/9000", headers=auth(key))
        assert response.json() == {"zipcode": 9000, "risk_factor": "B", "exists": True}
    accepted = keyed.post("/batches", content=b"zipcode\n9000\n", headers=auth())
    assert accepted.status_code == 202, accepted.text
    finish(keyed, accepted.json()["job_id"])


def test_the_schema_offers_the_bearer_scheme_when_keys_are_configured(keyed: TestClient) -> None:
    document = keyed.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert "securitySchemes" not in gateway.create_app().openapi().get("components", {})


# -- where the gateway may listen without keys ------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1"])
def test_loopback_needs_no_keys(host: str) -> None:
    refuse_exposure(host, 5000, ApiKeys([]))


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::"])
def test_every_interface_needs_keys(host: str) -> None:
    with pytest.raises(SettingsError) as refused:
        refuse_exposure(host, 5000, ApiKeys([]))
    assert "without API keys" in str(refused.value)
    refuse_exposure(host, 5000, ApiKeys([KEY]))
