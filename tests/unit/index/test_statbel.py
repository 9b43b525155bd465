"""The Statbel source client against respx-mocked HTTP: answers, faults and the size cap."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx

from tests.support.settings import MakeSettings
from tests.support.statbel_documents import fixture_body
from worker.contract.errors import echo
from worker.index.statbel import (
    SourceRefused,
    SourceUnavailable,
    StatbelSource,
    source_from_settings,
)

URL = "https://statbel.test/bestat/api/views/health-index/result/JSON"
CAP = 5_000_000


@pytest.fixture
def source() -> StatbelSource:
    return StatbelSource(URL, timeout=2.0, max_bytes=CAP)


class Junk(httpx.SyncByteStream):
    """`total` bytes of junk in 64 KiB chunks, counting how many were pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        chunk = b"x" * 65_536
        while self.pulled < self.total:
            self.pulled += len(chunk)
            yield chunk


@respx.mock
def test_a_200_answer_is_the_body(source: StatbelSource) -> None:
    route = respx.get(URL).mock(return_value=httpx.Response(200, content=fixture_body()))
    assert source.fetch() == fixture_body()
    assert route.calls.last.request.headers["Accept"] == "application/json"


@respx.mock
@pytest.mark.parametrize(
    "fault",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.ReadTimeout("slow read"),
        httpx.RemoteProtocolError("peer closed"),
    ],
)
def test_network_faults_and_timeouts_are_transient(source: StatbelSource, fault: Exception) -> None:
    respx.get(URL).mock(side_effect=fault)
    with pytest.raises(SourceUnavailable, match=type(fault).__name__):
        source.fetch()


@respx.mock
@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_rate_limiting_and_5xx_are_transient(source: StatbelSource, status: int) -> None:
    respx.get(URL).mock(return_value=httpx.Response(status, text="busy"))
    with pytest.raises(SourceUnavailable, match=str(status)):
        source.fetch()


@respx.mock
@pytest.mark.parametrize("status", [204, 301, 400, 401, 403, 404, 410])
def test_other_answers_are_refused_not_retried(source: StatbelSource, status: int) -> None:
    respx.get(URL).mock(return_value=httpx.Response(status))
    with pytest.raises(SourceRefused, match=str(status)):
        source.fetch()


@respx.mock
def test_ten_megabytes_of_junk_are_refused_without_reading_them_all(
    source: StatbelSource,
) -> None:
    junk = Junk(10_000_000)
    respx.get(URL).mock(return_value=httpx.Response(200, stream=junk))
    with pytest.raises(SourceRefused, match="larger than 5000000 bytes"):
        source.fetch()
    assert junk.pulled <= CAP + 65_536


@respx.mock
def test_a_declared_oversize_body_is_refused_before_reading(source: StatbelSource) -> None:
    junk = Junk(10_000_000)
    respx.get(URL).mock(
        return_value=httpx.Response(200, headers={"Content-Length": "10000000"}, stream=junk)
    )
    with pytest.raises(SourceRefused, match="larger"):
        source.fetch()
    assert junk.pulled == 0


@respx.mock
def test_a_body_that_outlasts_the_overall_deadline_is_a_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = iter(range(0, 1000, 5))  # every reading of the clock is 5 s later
    monkeypatch.setattr("worker.index.statbel.time.monotonic", lambda: float(next(clock)))
    respx.get(URL).mock(return_value=httpx.Response(200, stream=Junk(500_000)))
    with pytest.raises(SourceUnavailable, match="longer than 2 s"):
        StatbelSource(URL, timeout=2.0, max_bytes=CAP).fetch()


@respx.mock
def test_too_many_redirects_are_refused(source: StatbelSource) -> None:
    respx.get(URL).mock(return_value=httpx.Response(302, headers={"Location": URL}))
    with pytest.raises(SourceRefused, match="redirects"):
        source.fetch()


def test_the_source_is_built_from_settings(
    monkeypatch: pytest.MonkeyPatch, make_settings: MakeSettings
) -> None:
    monkeypatch.setenv("ZIPSCORE_STATBEL_URL", "http://127.0.0.1:8123/index.json")
    monkeypatch.setenv("ZIPSCORE_STATBEL_TIMEOUT_SECONDS", "3.5")
    built = source_from_settings(make_settings())
    assert (built.url, built.timeout, built.max_bytes) == (
        "http://127.0.0.1:8123/index.json",
        3.5,
        5_000_000,
    )


@respx.mock
def test_a_fault_names_the_host_and_the_os_cause_never_the_credentials() -> None:
    """It used to say only 'cannot read the source: ConnectError': not which host, nor why."""
    url = "https://reader:s3cret-token@statbel.test:8443/bestat/api/views/x/result/JSON?key=k"
    respx.get(url).mock(side_effect=httpx.ConnectError("[Errno -2] Name or service not known"))
    with pytest.raises(SourceUnavailable) as caught:
        StatbelSource(url, timeout=2.0, max_bytes=CAP).fetch()
    assert str(caught.value) == (
        "Statbel (statbel.test:8443) unreachable:"
        " ConnectError '[Errno -2] Name or service not known'"
    )


@respx.mock
def test_a_cause_echoing_the_password_is_masked_and_capped() -> None:
    url = "https://reader:s3cret-token@statbel.test/x"
    respx.get(url).mock(side_effect=httpx.ConnectError("reader:s3cret-token " + "x" * 500))
    with pytest.raises(SourceUnavailable) as caught:
        StatbelSource(url, timeout=2.0, max_bytes=CAP).fetch()
    assert "s3cret" not in str(caught.value)
    assert str(caught.value) == (
        f"Statbel (statbel.test) unreachable: ConnectError {echo('*** ' + 'x' * 500)}"
    )
    assert len(str(caught.value)) < 100
