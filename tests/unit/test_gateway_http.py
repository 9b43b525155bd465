"""The gateway's HTTP conventions, in-process: contract codes for every status, an OpenAPI
document that lists exactly what each operation answers, Retry-After on every 503, HEAD,
offline docs, API keys and the per-key batch limit."""

from __future__ import annotations

import errno
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import fakeredis
import httpx
import pytest
from fastapi.testclient import TestClient

from producer.batch.results import JobStatus
from producer.client import Client
from producer.gateway import app as gateway
from producer.gateway.auth import ApiKeys, refuse_exposure
from producer.gateway.jobs import BatchLauncher
from producer.gateway.limits import BatchRateLimit, Refusal
from tests.unit.test_gateway import error, seed_index, settings
from tests.unit.test_gateway import job_status as gateway_job_status
from worker.contract.batch_store import BatchStore
from worker.contract.errors import ErrorCode, ZipscoreError
from worker.contract.index_cache import IndexCache
from worker.contract.result_cache import ResultCache
from worker.contract.settings import SettingsError

Sent = list[tuple[str, tuple[Any, ...]]]
KEY = "k3y-0123456789abcdef-one"
OTHER_KEY = "k3y-fedcba9876543210-two"
JOB = "0123456789abcdef"


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def plain_client(
    tmp_path: Path, cache: ResultCache, index_cache: IndexCache, batch_store: BatchStore
) -> Client:
    """The eager client (tasks in-process, fakeredis, memory stores); no API keys."""
    return Client(
        settings(tmp_path), cache=cache, index_cache=index_cache, batch_store=batch_store, timeout=1
    )


@pytest.fixture
def plain(plain_client: Client, index_eager: Sent) -> Iterator[TestClient]:
    with TestClient(gateway.create_app(plain_client.settings, client=plain_client)) as api:
        yield api


@pytest.fixture
def keyed_client(
    tmp_path: Path, cache: ResultCache, index_cache: IndexCache, batch_store: BatchStore
) -> Client:
    """The eager client, its settings with two API keys, one batch a minute, 1 MB uploads."""
    keyed = settings(
        tmp_path,
        gateway_api_keys=(KEY, OTHER_KEY),
        gateway_batches_per_minute=1,
        gateway_max_upload_mb=1,
    )
    return Client(keyed, cache=cache, index_cache=index_cache, batch_store=batch_store, timeout=1)


@pytest.fixture
def keyed(keyed_client: Client, index_eager: Sent) -> Iterator[TestClient]:
    with TestClient(gateway.create_app(keyed_client.settings, client=keyed_client)) as api:
        yield api


def job_status(tmp_path: Path, state: str) -> JobStatus:
    """test_gateway's job in `state`, with its upload and its result on disk."""
    uploads = tmp_path / "uploads"
    uploads.mkdir(exist_ok=True)
    (uploads / "a.csv").write_text("zipcode\n9000\n")  # the upload, which a resume reads
    (uploads / "a.scored.csv").write_text("zipcode\n")  # the result, which /result serves
    return gateway_job_status(tmp_path, state)


# -- the OpenAPI document ---------------------------------------------------------------

# A request each operation answers with success (given a backend that does).
REQUESTS: dict[tuple[str, str], tuple[str, bytes | None]] = {
    ("GET", "/healthz"): ("/healthz", None),
    ("GET", "/readyz"): ("/readyz", None),
    ("GET", "/zipcodes/{zipcode}"): ("/zipcodes/9000", None),
    ("GET", "/zipcodes"): ("/zipcodes?risk_factor=A", None),
    ("GET", "/index"): ("/index?base_year=2004", None),
    ("POST", "/batches"): ("/batches", b"zipcode\n9000\n"),
    ("GET", "/batches/{job_id}"): (f"/batches/{JOB}", None),
    ("POST", "/batches/{job_id}/resume"): (f"/batches/{JOB}/resume", None),
    ("GET", "/batches/{job_id}/result"): (f"/batches/{JOB}/result", None),
}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


def keyed_document() -> dict[str, Any]:
    return gateway.create_app(settings(Path("/nowhere"), gateway_api_keys=(KEY,))).openapi()


def test_the_schema_has_no_422_and_names_every_operation(keyed: TestClient) -> None:
    for document in (keyed.get("/openapi.json").json(), gateway.create_app().openapi()):
        assert "422" not in str(document)
        assert "HTTPValidationError" not in document.get("components", {}).get("schemas", {})
        found = operations(document)
        assert {(method, path) for method, path, _ in found} == set(REQUESTS)
        names = [operation.get("operationId") for _, _, operation in found]
        assert all(names), names
        assert len(set(names)) == len(names), names
        assert {"lookupZipcode", "listZipcodes", "latestIndex", "createBatch"} <= set(names)


def test_every_answer_is_documented_with_an_example() -> None:
    for _, _, operation in operations(keyed_document()):
        for status, response in operation["responses"].items():
            (content,) = response["content"].values()
            assert "example" in content, (operation["operationId"], status)
            if status.startswith(("4", "5")) and operation["operationId"] != "readiness":
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
                assert set(content["example"]["error"]) == {"code", "message"}


def test_401_and_429_are_documented_only_when_keys_are_configured() -> None:
    plain = {
        op["operationId"]: set(op["responses"])
        for *_, op in operations(gateway.create_app(settings(Path("/nowhere"))).openapi())
    }
    with_keys = {op["operationId"]: set(op["responses"]) for *_, op in operations(keyed_document())}
    for name, statuses in with_keys.items():
        extra = statuses - plain[name]
        expected = set() if name in {"liveness", "readiness"} else {"401"}
        if name == "createBatch":
            expected.add("429")
        assert extra == expected, name


def provoke(
    status: int,
    method: str,
    path: str,
    api: TestClient,
    backend: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> httpx.Response:
    """Make the gateway answer `method path` with `status`, through what causes it."""
    url, body = REQUESTS[(method, path)]
    headers = auth()

    def fail(code: ErrorCode) -> Callable[..., Any]:
        def raising(*_: Any, **__: Any) -> Any:
            raise ZipscoreError(code, "the backend says no")

        return raising

    if status == 400:  # a query parameter given twice: refused on every route
        url += ("&" if "?" in url else "?") + "x=1&x=2"
    elif status == 401:
        headers = {}
    elif status == 404:
        pass  # the job is not in the (memory) batch store
    elif status == 409:
        monkeypatch.setattr(backend, "batch_status", lambda job: job_status(tmp_path, "running"))
    elif status == 413:
        body = b"zipcode\n" + b"9000\n" * 300_000  # 1.5 MB, over the 1 MB limit
    elif status == 429:
        api.request(method, url, headers=headers, content=b"not,a\nbatch\n")  # the one a minute
    elif status in {503, 504}:
        code = ErrorCode.BACKEND_UNAVAILABLE if status == 503 else ErrorCode.TIMEOUT
        for name in ("lookup", "by_risk_factor", "index", "call", "score_file", "resume_batch"):
            monkeypatch.setattr(backend, name, fail(code))
        if path.endswith("/resume"):  # an interrupted job, so a resume is tried
            monkeypatch.setattr(backend, "batch_status", lambda job: job_status(tmp_path, "x"))
        elif path.startswith("/batches/"):
            monkeypatch.setattr(backend, "batch_status", fail(code))
    elif status == 507:

        async def full(*_: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(anyio.AsyncFile, "write", full)
    response: httpx.Response = api.request(method, url, headers=headers, content=body)
    return response


DOCUMENTED = sorted(
    (int(status), method, path)
    for method, path, operation in operations(keyed_document())
    for status in operation["responses"]
    if int(status) >= 400
)


@pytest.mark.parametrize(("status", "method", "path"), DOCUMENTED)
def test_every_documented_error_status_is_answered(
    status: int,
    method: str,
    path: str,
    keyed: TestClient,
    keyed_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    response = provoke(status, method, path, keyed, keyed_client, monkeypatch, tmp_path)
    assert response.status_code == status, response.text
    if path != "/readyz":
        code = error(response)[1]
        assert gateway.http_status(ErrorCode(code)) == status or status in {413, 507}
    if status in {429, 503}:
        assert int(response.headers["retry-after"]) > 0
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_each_operation_answers_its_documented_success(
    keyed: TestClient,
    keyed_client: Client,
    index_cache: IndexCache,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    answer_pings(keyed_client, monkeypatch)
    seed_index(index_cache)
    status = job_status(tmp_path, "done")
    monkeypatch.setattr(keyed_client, "batch_status", lambda job: status)
    monkeypatch.setattr(keyed_client, "resume_batch", lambda *_, **__: None)

    def started(source: Path, output: Path, **kwargs: Any) -> None:  # and done at once
        with kwargs["progress"](JOB, 1):
            pass

    monkeypatch.setattr(keyed_client, "score_file", started)
    for method, path, operation in operations(keyed.get("/openapi.json").json()):
        url, body = REQUESTS[(method, path)]
        response = keyed.request(method, url, headers=auth(), content=body)
        success = [int(s) for s in operation["responses"] if int(s) < 300]
        assert [response.status_code] == success, (path, response.text)


def answer_pings(backend: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Readiness checks pass: Redis answers PING, a worker `health.ping`."""
    call = backend.call

    def ping_or_call(task: str, *args: Any, **kwargs: Any) -> Any:
        if task == "health.ping":
            return {"worker": "ok", "postgres": "ok"}
        return call(task, *args, **kwargs)

    monkeypatch.setattr(backend, "call", ping_or_call)
    monkeypatch.setattr(
        "worker.contract.result_cache.redis_client", lambda url: fakeredis.FakeRedis()
    )


# -- Retry-After on every 503 -----------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "seconds"), [(ErrorCode.BACKEND_UNAVAILABLE, "5"), (ErrorCode.INDEX_UNAVAILABLE, "60")]
)
def test_a_503_from_the_backend_says_when_to_retry(
    plain: TestClient,
    plain_client: Client,
    monkeypatch: pytest.MonkeyPatch,
    code: ErrorCode,
    seconds: str,
) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise ZipscoreError(code, "down")

    monkeypatch.setattr(plain_client, "lookup", refuse)
    response = plain.get("/zipcodes/9000")
    assert error(response) == (503, code.value)
    assert response.headers["retry-after"] == seconds


def test_busy_batch_slots_say_when_to_retry_on_create_and_on_resume(
    plain_client: Client, index_eager: Sent, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    launcher = BatchLauncher(plain_client, max_running=1)
    held = launcher.reserve()  # the one slot, taken by a batch still running
    monkeypatch.setattr(
        plain_client, "batch_status", lambda job: job_status(tmp_path, "interrupted")
    )
    with TestClient(
        gateway.create_app(plain_client.settings, client=plain_client, launcher=launcher)
    ) as api:
        created = api.post("/batches", content=b"zipcode\n9000\n")
        resumed = api.post(f"/batches/{JOB}/resume")
    held.release()
    for response in (created, resumed):
        assert error(response) == (503, "BACKEND_UNAVAILABLE")
        assert response.headers["retry-after"] == "10"
        assert "running 1 batches already" in response.json()["error"]["message"]


def test_not_ready_says_when_to_retry(
    plain_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def silent(*_: object, **__: object) -> dict[str, Any]:
        raise ZipscoreError(ErrorCode.TIMEOUT, "no answer from a worker within 2 s")

    monkeypatch.setattr(plain_client, "call", silent)
    monkeypatch.setattr(
        "worker.contract.result_cache.redis_client", lambda url: fakeredis.FakeRedis()
    )
    with TestClient(gateway.create_app(plain_client.settings, client=plain_client)) as api:
        response = api.get("/readyz")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


# -- HEAD -------------------------------------------------------------------------------


def test_head_answers_every_get_route_without_a_body(plain: TestClient) -> None:
    for url in ("/healthz", "/zipcodes/9000", "/zipcodes/999", "/openapi.json", "/docs"):
        got, head = plain.get(url), plain.head(url)
        assert head.status_code == got.status_code, url
        assert head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"], url
        assert head.headers["content-type"] == got.headers["content-type"], url
    assert plain.head("/healthz").status_code == 200
    refused = plain.head("/batches")  # a POST-only route: still 405, with what it allows
    assert (refused.status_code, refused.headers["allow"]) == (405, "POST")


# -- /docs without the internet ---------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_docs_load_everything_from_this_server(plain: TestClient, page: str) -> None:
    html = plain.get(page)
    assert html.status_code == 200
    assert not re.search(r"(?i)(https?:)?//[a-z0-9]", html.text), "an external host"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
    assert len(assets) >= 2
    kinds = set()
    for asset in assets:
        assert asset.startswith(gateway.DOCS_ASSETS + "/"), asset
        answer = plain.get(asset)
        assert answer.status_code == 200, asset
        kind = answer.headers["content-type"].split(";")[0]
        expected = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
        assert expected[Path(asset).suffix] in kind, (asset, kind)
        kinds.add(Path(asset).suffix)
        assert len(answer.content) > 1_000
    assert ".js" in kinds
    # The browser loads nothing from elsewhere, whatever the scripts ask (ReDoc: its logo).
    policy = html.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "https:" not in policy
    assert "*" not in policy
    if page == "/docs":
        assert ".css" in kinds
        assert '"validatorUrl": null' in html.text  # no badge fetched from the validator


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


def finish(api: TestClient, job: str) -> None:
    """Wait for a job to be done, so its thread does not outlive the test."""
    deadline = time.monotonic() + 20
    while api.get(f"/batches/{job}", headers=auth()).json()["state"] != "done":
        assert time.monotonic() < deadline
        time.sleep(0.02)


def test_the_schema_offers_the_bearer_scheme_when_keys_are_configured(keyed: TestClient) -> None:
    document = keyed.get("/openapi.json").json()
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert "securitySchemes" not in gateway.create_app().openapi().get("components", {})


# -- the per-key batch limit ------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_each_key_has_a_bucket_of_batches_refilled_over_the_minute() -> None:
    clock = Clock()
    limit = BatchRateLimit(per_minute=3, clock=clock)
    for _ in range(3):  # a burst of a minute's worth
        limit.take("a")
    with pytest.raises(Refusal) as refused:
        limit.take("a")
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert refused.value.headers == {"Retry-After": "20"}  # one batch every 20 s
    limit.take("b")  # another key has its own bucket
    clock.now += 19.0
    with pytest.raises(Refusal) as still:
        limit.take("a")
    assert still.value.headers == {"Retry-After": "1"}
    clock.now += 1.0
    limit.take("a")
    clock.now += 3600  # idle: the bucket fills up to a minute's worth, no more
    for _ in range(3):
        limit.take("a")
    with pytest.raises(Refusal):
        limit.take("a")


def test_a_key_past_its_batches_a_minute_is_429_and_other_keys_are_not(
    keyed: TestClient, keyed_client: Client
) -> None:
    first = keyed.post("/batches", content=b"zipcode\n9000\n", headers=auth())
    second = keyed.post("/batches", content=b"zipcode\n9000\n", headers=auth())
    other = keyed.post("/batches", content=b"zipcode\n9000\n", headers=auth(OTHER_KEY))
    assert first.status_code == 202, first.text
    assert error(second) == (429, "RATE_LIMITED")
    assert 1 <= int(second.headers["retry-after"]) <= 60
    assert other.status_code == 202, other.text
    for accepted in (first, other):
        finish(keyed, accepted.json()["job_id"])
    uploads = list(keyed_client.settings.gateway_upload_dir.iterdir())
    assert len([p for p in uploads if not p.name.endswith(".scored.csv")]) == 2  # not the 429


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_zipscore_serve_beyond_loopback_without_keys_refuses_to_start(tmp_path: Path) -> None:
    """A real `zipscore serve --host 0.0.0.0`: one line, exit 1, nothing bound."""
    port = free_port()
    env = {
        name: value
        for name, value in __import__("os").environ.items()
        if not name.startswith("ZIPSCORE_GATEWAY_API_KEYS")
    }
    exe = Path(sys.executable).with_name("zipscore")
    began = time.monotonic()
    done = subprocess.run(
        [str(exe), "serve", "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("zipscore: BACKEND_UNAVAILABLE: refusing to serve on '0.0.0.0'")
    assert "ZIPSCORE_GATEWAY_API_KEYS_FILE" in lines[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    assert time.monotonic() - began < 30
    with socket.socket() as probe:  # the port was never taken
        probe.bind(("0.0.0.0", port))
