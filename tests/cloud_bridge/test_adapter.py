"""The DingTalk-style adapter against the simulator, and the httpx error mapping."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from cloud_bridge.adapter import (
    CloudAuthError,
    CloudConfigError,
    CloudConnectError,
    CloudError,
    CloudResponseError,
    CloudTimeoutError,
    UploadOutcome,
    map_httpx_error,
)
from cloud_bridge.dingtalk import DingTalkAdapter
from gateway.store.records import OutRecord, now_ms
from simulators.backend import BackendServer, Faults, demo_roster
from simulators.mosquitto import free_port

SECRET = "s3cret-token"

# Every httpx error class and what it must become. A new httpx class fails the test below
# until it is placed here, so the mapping stays complete by construction.
EXPECTED: dict[type[Exception], type[CloudError]] = {
    httpx.RequestError: CloudResponseError,
    httpx.TransportError: CloudResponseError,
    httpx.TimeoutException: CloudTimeoutError,
    httpx.ConnectTimeout: CloudTimeoutError,
    httpx.ReadTimeout: CloudTimeoutError,
    httpx.WriteTimeout: CloudTimeoutError,
    httpx.PoolTimeout: CloudTimeoutError,
    httpx.NetworkError: CloudConnectError,
    httpx.ReadError: CloudConnectError,
    httpx.WriteError: CloudConnectError,
    httpx.ConnectError: CloudConnectError,
    httpx.CloseError: CloudConnectError,
    httpx.ProxyError: CloudConnectError,
    httpx.UnsupportedProtocol: CloudConfigError,
    httpx.ProtocolError: CloudResponseError,
    httpx.LocalProtocolError: CloudResponseError,
    httpx.RemoteProtocolError: CloudResponseError,
    httpx.DecodingError: CloudResponseError,
    httpx.TooManyRedirects: CloudResponseError,
    httpx.HTTPStatusError: CloudResponseError,
    httpx.InvalidURL: CloudConfigError,
}


def _subclasses(cls: type[Exception]) -> Iterator[type[Exception]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _instance(cls: type[Exception], request: httpx.Request) -> Exception:
    if cls is httpx.HTTPStatusError:
        return httpx.HTTPStatusError(
            "boom", request=request, response=httpx.Response(502, request=request)
        )
    if cls is httpx.InvalidURL:
        return httpx.InvalidURL("boom")
    return cls("boom", request=request)  # type: ignore[call-arg]


def test_every_httpx_error_is_mapped() -> None:
    seen = set(_subclasses(httpx.HTTPError)) | {httpx.InvalidURL}
    assert seen == set(EXPECTED), "map this httpx error class in map_httpx_error and here"


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_mapping_is_most_specific_and_keeps_the_request(cls: type[Exception]) -> None:
    request = httpx.Request("POST", f"http://127.0.0.1:1/upload?access_token={SECRET}")
    exc = _instance(cls, request)
    mapped = map_httpx_error(exc, "uploading")  # type: ignore[arg-type]
    assert type(mapped) is EXPECTED[cls]
    assert SECRET not in mapped.message  # tokens never reach a log line
    if cls is not httpx.InvalidURL:
        assert mapped.request is request
    assert isinstance(mapped, TimeoutError) == issubclass(cls, httpx.TimeoutException)


def _record(rid: int, person: str | None = "u0001", kind: str = "punch") -> OutRecord:
    return OutRecord(
        record_id=rid,
        device_id="term-01",
        msg_id=f"m{rid}",
        seq=rid,
        kind=kind,
        device_ts_ms=now_ms(),
        received_ts_ms=now_ms(),
        person_id=person,
        credential="C0001",
        sync_attempts=0,
    )


def _adapter(base_url: str, *, concurrency: int = 8) -> DingTalkAdapter:
    return DingTalkAdapter(
        base_url, "tack-demo", "tack-demo-secret", timeout_s=2.0, concurrency=concurrency
    )


async def test_one_token_serves_many_calls(backend: BackendServer) -> None:
    adapter = _adapter(backend.base_url, concurrency=4)
    try:
        results = await adapter.upload([_record(i) for i in range(1, 11)])
        again = await adapter.upload([_record(1)])
    finally:
        await adapter.aclose()
    assert [r.outcome for r in results] == [UploadOutcome.ACCEPTED] * 10
    assert [r.record_id for r in results] == list(range(1, 11))
    assert again[0].outcome is UploadOutcome.DUPLICATE
    assert adapter.token_fetches == 1
    assert backend.state.snapshot()["calls"]["gettoken"] == 1


async def test_results_per_record(backend: BackendServer) -> None:
    adapter = _adapter(backend.base_url)
    try:
        results = await adapter.upload(
            [_record(1), _record(2, "ghost"), _record(3, None), _record(4, kind="room_checkin")]
        )
    finally:
        await adapter.aclose()
    assert [r.outcome for r in results] == [
        UploadOutcome.ACCEPTED,
        UploadOutcome.REFUSED,
        UploadOutcome.REFUSED,
        UploadOutcome.REFUSED,
    ]
    assert results[1].errcode == 33012
    assert len(backend.state.records()) == 1


async def test_wrong_secret_is_an_auth_error(backend: BackendServer) -> None:
    adapter = DingTalkAdapter(backend.base_url, "tack-demo", "wrong")
    try:
        with pytest.raises(CloudAuthError) as info:
            await adapter.upload([_record(1)])
    finally:
        await adapter.aclose()
    assert info.value.errcode == 40089
    assert info.value.transient is False


async def test_nothing_listening_is_a_connect_error() -> None:
    adapter = _adapter(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(CloudConnectError) as info:
            await adapter.upload([_record(1)])
    finally:
        await adapter.aclose()
    assert info.value.request is not None
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_slow_backend_gives_retry_results(backend: BackendServer) -> None:
    adapter = DingTalkAdapter(backend.base_url, "tack-demo", "tack-demo-secret", timeout_s=0.2)
    try:
        await adapter.access_token()
        backend.state.set_faults(Faults(latency_ms=1000))
        results = await adapter.upload([_record(1)])
    finally:
        await adapter.aclose()
    assert results[0].outcome is UploadOutcome.RETRY
    assert "Timeout" in results[0].reason


async def test_roster_pages(backend: BackendServer) -> None:
    backend.state.set_roster(demo_roster(130))
    adapter = _adapter(backend.base_url)
    try:
        first = await adapter.pull_roster(None)
        second = await adapter.pull_roster(first.next_cursor)
    finally:
        await adapter.aclose()
    assert (len(first.people), first.has_more, first.next_cursor) == (100, True, "u0100")
    assert (len(second.people), second.has_more, second.next_cursor) == (30, False, None)
    assert second.people[0].person_id == "u0101"


async def test_http_error_status_is_a_response_error(backend: BackendServer) -> None:
    adapter = _adapter(backend.base_url + "/nowhere")
    try:
        with pytest.raises(CloudResponseError, match="HTTP 404"):
            await adapter.access_token()
    finally:
        await adapter.aclose()
