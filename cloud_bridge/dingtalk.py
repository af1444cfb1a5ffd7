"""The DingTalk-style open API adapter: token handling, per-record upload, roster paging.

DingTalk's punch upload takes one record per call, so throughput comes from ``concurrency``
calls in flight rather than from batching. Every call carries the record's idempotency key,
which is what makes a replay after a crash harmless: the backend answers "duplicate" and
stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import httpx

from cloud_bridge.adapter import (
    CloudAuthError,
    CloudError,
    CloudResponseError,
    RosterPage,
    UploadOutcome,
    UploadResult,
    map_httpx_error,
)
from gateway.store.records import OutRecord
from gateway.store.roster import Person

log = logging.getLogger(__name__)

TOKEN_PATH = "/gettoken"
UPLOAD_PATH = "/topapi/attendance/record/upload"
USER_LIST_PATH = "/topapi/v2/user/list"

# DingTalk advises renewing a token before it runs out rather than on the first refusal; five
# minutes covers clock drift and slow calls. For short-lived tokens (tests) a quarter of the
# lifetime is used instead, so a token is never "due" the moment it arrives.
TOKEN_REFRESH_MARGIN_S = 300.0
ROSTER_PAGE_SIZE = 100  # the API's maximum page
RATE_LIMIT_RETRY_S = 1.0  # errcode 90002: DingTalk advises 1 s, 2 s, 4 s; the runner doubles
QUOTA_RETRY_S = 600.0  # errcode 90020: the monthly quota is spent; no point asking soon

ERR_OK = 0
ERR_INVALID_APP_CREDENTIALS = 40089
ERR_INVALID_TOKEN = 40014
ERR_TOKEN_EXPIRED = 42001
ERR_INVALID_PARAMETER = 40035
ERR_UNKNOWN_USERID = 33012
ERR_CHECK_TIME_OUT_OF_RANGE = 850001
ERR_RATE_LIMITED = 90002
ERR_QUOTA_EXCEEDED = 90020

_TOKEN_ERRCODES = frozenset({ERR_INVALID_TOKEN, ERR_TOKEN_EXPIRED})
# Refusals that no retry can change: the record itself is unacceptable to the backend.
_PERMANENT_ERRCODES = frozenset(
    {ERR_UNKNOWN_USERID, ERR_CHECK_TIME_OUT_OF_RANGE, ERR_INVALID_PARAMETER}
)
_RETRY_AFTER_S = {ERR_RATE_LIMITED: RATE_LIMIT_RETRY_S, ERR_QUOTA_EXCEEDED: QUOTA_RETRY_S}

UPLOADABLE_KINDS = frozenset({"punch"})


class DingTalkAdapter:
    """Implements :class:`cloud_bridge.adapter.BackendAdapter` for the DingTalk-style API.

    Pass ``client`` to control the transport (tests, proxies); the adapter then leaves closing
    it to the caller. URLs are built from ``base_url`` either way.
    """

    def __init__(
        self,
        base_url: str,
        app_key: str,
        app_secret: str,
        *,
        timeout_s: float = 10.0,
        concurrency: int = 8,
        batch_size: int = 50,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        if concurrency < 1 or batch_size < 1:
            raise ValueError("concurrency and batch_size must be at least 1")
        self._base_url = base_url.rstrip("/")
        self._app_key = app_key
        self._app_secret = app_secret
        self._batch_size = batch_size
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        )
        self._slots = asyncio.Semaphore(concurrency)
        self._token: str | None = None
        self._token_refresh_at_s = 0.0  # monotonic
        self._token_lock = asyncio.Lock()
        self.token_fetches = 0

    @property
    def batch_size(self) -> int:
        return self._batch_size

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- tokens -------------------------------------------------------------------------------

    def _token_fresh(self) -> bool:
        return self._token is not None and time.monotonic() < self._token_refresh_at_s

    async def access_token(self) -> str:
        """The cached token, fetched or renewed first when it is missing or due."""
        if self._token_fresh() and self._token is not None:
            return self._token
        async with self._token_lock:
            if self._token_fresh() and self._token is not None:
                return self._token
            return await self._fetch_token()

    async def _renew_token(self, refused: str) -> str:
        """The backend refused ``refused``: get a new token, unless another call already did."""
        async with self._token_lock:
            if self._token is not None and self._token != refused and self._token_fresh():
                return self._token
            self._token = None
            return await self._fetch_token()

    async def _fetch_token(self) -> str:
        data = await self._send(
            "GET",
            TOKEN_PATH,
            params={"appkey": self._app_key, "appsecret": self._app_secret},
            action="fetching an access token",
        )
        self.token_fetches += 1
        code = data["errcode"]
        if code == ERR_INVALID_APP_CREDENTIALS:
            raise CloudAuthError(
                f"the backend refused the app credentials (errcode {code}: "
                f"{data.get('errmsg', '')}); check bridge.app_key and bridge.app_secret",
                errcode=code,
            )
        token = data.get("access_token")
        expires_in_s = data.get("expires_in")
        if code != ERR_OK or not isinstance(token, str) or not isinstance(expires_in_s, int):
            raise CloudResponseError(
                f"fetching an access token: unusable answer (errcode {code}: "
                f"{data.get('errmsg', '')})",
                errcode=code,
            )
        margin_s = min(TOKEN_REFRESH_MARGIN_S, expires_in_s / 4)
        self._token = token
        self._token_refresh_at_s = time.monotonic() + expires_in_s - margin_s
        log.info("access token renewed; valid for %d s", expires_in_s)
        return token

    # -- HTTP ---------------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        path: str,
        *,
        action: str,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One HTTP call; the decoded body, which always has an int ``errcode``."""
        try:
            resp = await self._client.request(
                method, self._base_url + path, params=params, json=json
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise map_httpx_error(exc, action) from exc
        if resp.status_code != httpx.codes.OK:
            raise CloudResponseError(
                f"{action}: HTTP {resp.status_code} from {resp.request.url.copy_with(query=None)}",
                request=resp.request,
                retry_after_s=_retry_after_s(resp),
            )
        try:
            data = resp.json()
        except ValueError as exc:
            raise CloudResponseError(
                f"{action}: the answer is not JSON", request=resp.request
            ) from exc
        if not isinstance(data, dict) or not isinstance(data.get("errcode"), int):
            raise CloudResponseError(f"{action}: the answer has no errcode", request=resp.request)
        return data

    async def _call(self, method: str, path: str, *, action: str, json: dict[str, Any]) -> Any:
        """A call with the access token; on a token refusal, renew it and repeat the call once,
        so the call in flight is not lost to a token that expired under it."""
        token = await self.access_token()
        data = await self._send(
            method, path, action=action, params={"access_token": token}, json=json
        )
        if data["errcode"] in _TOKEN_ERRCODES:
            log.info("token refused (errcode %d); renewing and repeating the call", data["errcode"])
            token = await self._renew_token(token)
            data = await self._send(
                method, path, action=action, params={"access_token": token}, json=json
            )
        return data

    # -- upload -------------------------------------------------------------------------------

    async def upload(self, records: Sequence[OutRecord]) -> list[UploadResult]:
        """One call per record, ``concurrency`` at a time; one result per record, in order.

        Raises :class:`CloudError` only when no call could be made at all (no token); every
        other failure becomes that record's ``retry`` result.
        """
        if not records:
            return []
        await self.access_token()
        return list(await asyncio.gather(*(self._upload_one(r) for r in records)))

    async def _upload_one(self, rec: OutRecord) -> UploadResult:
        if rec.kind not in UPLOADABLE_KINDS:
            return UploadResult(
                rec.record_id,
                UploadOutcome.REFUSED,
                f"records of kind {rec.kind!r} have no upload API at this backend",
            )
        if not rec.person_id:
            return UploadResult(
                rec.record_id,
                UploadOutcome.REFUSED,
                "the record names no person (its credential matched nobody); nothing to upload",
            )
        payload = {
            "userid": rec.person_id,
            "device_id": rec.device_id,
            "device_name": rec.device_id,
            "user_check_time": rec.device_ts_ms,
            "idempotency_key": rec.idempotency_key,
        }
        async with self._slots:
            try:
                data = await self._call(
                    "POST", UPLOAD_PATH, action=f"uploading record {rec.record_id}", json=payload
                )
            except CloudError as exc:
                return UploadResult(
                    rec.record_id,
                    UploadOutcome.RETRY,
                    exc.message,
                    retry_after_s=exc.retry_after_s,
                    errcode=exc.errcode,
                )
        return _upload_result(rec.record_id, data)

    # -- roster -------------------------------------------------------------------------------

    async def pull_roster(self, cursor: str | None) -> RosterPage:
        body: dict[str, Any] = {"size": ROSTER_PAGE_SIZE}
        if cursor:
            body["cursor"] = cursor
        async with self._slots:
            data = await self._call("POST", USER_LIST_PATH, action="pulling the roster", json=body)
        code = data["errcode"]
        if code != ERR_OK:
            raise CloudResponseError(
                f"pulling the roster: errcode {code}: {data.get('errmsg', '')}",
                errcode=code,
                retry_after_s=_RETRY_AFTER_S.get(code),
            )
        result = data.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("list"), list):
            raise CloudResponseError("pulling the roster: the answer has no result.list")
        people = [p for p in (_person(item) for item in result["list"]) if p is not None]
        skipped = len(result["list"]) - len(people)
        if skipped:
            log.warning("roster page had %d entries without a userid; skipped", skipped)
        has_more = bool(result.get("has_more"))
        raw_next = result.get("next_cursor")
        next_cursor = str(raw_next) if raw_next not in (None, "") else None
        if has_more and next_cursor is None:
            raise CloudResponseError("pulling the roster: has_more without a next_cursor")
        return RosterPage(people, next_cursor if has_more else None, has_more)


def _upload_result(record_id: int, data: dict[str, Any]) -> UploadResult:
    code = int(data["errcode"])
    if code == ERR_OK:
        result = data.get("result")
        duplicate = isinstance(result, dict) and bool(result.get("duplicate"))
        outcome = UploadOutcome.DUPLICATE if duplicate else UploadOutcome.ACCEPTED
        return UploadResult(record_id, outcome, errcode=code)
    reason = f"errcode {code}: {data.get('errmsg', '')}"
    if code in _PERMANENT_ERRCODES:
        return UploadResult(record_id, UploadOutcome.REFUSED, reason, errcode=code)
    # Unknown codes are retried, not refused: a record kept pending can still be sent once the
    # cause is understood; a record marked failed would need a person to notice it.
    return UploadResult(
        record_id,
        UploadOutcome.RETRY,
        reason,
        retry_after_s=_RETRY_AFTER_S.get(code),
        errcode=code,
    )


def _retry_after_s(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:  # an HTTP date; the runner's own backoff applies
        return None


def _person(item: object) -> Person | None:
    if not isinstance(item, dict) or not item.get("userid"):
        return None
    card = item.get("card")
    job = item.get("job_number")
    return Person(
        person_id=str(item["userid"]),
        name=str(item.get("name") or ""),
        card=str(card) if card else None,
        employee_no=str(job) if job else None,
        department=str(item.get("dept") or ""),
        active=bool(item.get("active", True)),
    )
