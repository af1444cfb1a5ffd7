"""The DingTalk-style open API adapter: token handling, per-record upload, roster paging,
enrolment photos and approved leave.

DingTalk's punch upload takes one record per call, so throughput comes from ``concurrency``
calls in flight rather than from batching, paced by a token bucket at the app's rate limit
(about 20 calls/s on the standard tier). Calls for different devices run side by side; one
device's records go one after another, in sequence order, so the backend sees them in order.
Every call carries the record's idempotency key, which is what makes a replay after a crash
harmless: the backend answers "duplicate" and stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from cloud_bridge import dingtalk_pull as pull
from cloud_bridge.adapter import (
    CloudAuthError,
    CloudError,
    CloudResponseError,
    LeaveRecord,
    PhotoUnavailableError,
    RosterPage,
    UploadOutcome,
    UploadResult,
    cause_of,
    map_httpx_error,
)
from cloud_bridge.capabilities import BookingPage, ReceiptResult, RoomChange
from cloud_bridge.ratelimit import TokenBucket
from gateway.attendance.balances import LeaveBalance
from gateway.attendance.policy import Shift
from gateway.notices.store import OutReceipt
from gateway.store.records import OutRecord
from gateway.store.rooms import Room
from gateway.store.roster import Person
from gateway.verify.geo.fence import Geofence

log = logging.getLogger(__name__)

TOKEN_PATH = "/gettoken"
UPLOAD_PATH = "/topapi/attendance/record/upload"
USER_LIST_PATH = "/topapi/v2/user/list"
LEAVE_STATUS_PATH = "/topapi/attendance/getleavestatus"
# Meeting-room write-back: modelled on DingTalk's style, not a documented DingTalk path (its
# meeting-room write APIs differ per edition); the simulator implements it.
ROOM_CHANGE_PATH = "/topapi/meetingroom/booking/change"
# DingTalk's work notification API (real path; body simplified, plus our idempotency key).
NOTIFY_PATH = "/topapi/message/corpconversation/asyncsend_v2"
NOTIFY_AGENT_ID = 0  # the micro-app that sends; a real tenant has its own (modelled)
LEAVE_USERS_PER_CALL = 100  # getleavestatus takes at most 100 userids
LEAVE_PAGE_SIZE = 20  # and pages its answer 20 records at a time
DEFAULT_MAX_PHOTO_BYTES = 4_000_000  # face.max_bytes' default; the runner passes the setting

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
CALLS_PER_S = 20.0  # the upload API's rate limit per app on DingTalk's standard tier
UPLOAD_API = "upload"
# Must-read notice receipts (gateway/notices/): a modelled path in the style of DingTalk's
# blackboard (公告) APIs, which have no public receipt upload; docs/cloud-bridge.md.
RECEIPT_PATH = "/topapi/blackboard/receipt/upload"
# Told about every API call: (api, result), where result is "ok" or a cause_of() label.
CallObserver = Callable[[str, str], None]


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
        max_photo_bytes: int = DEFAULT_MAX_PHOTO_BYTES,
        calls_per_s: float = CALLS_PER_S,
        on_call: CallObserver | None = None,
    ) -> None:
        if concurrency < 1 or batch_size < 1:
            raise ValueError("concurrency and batch_size must be at least 1")
        self._bucket = TokenBucket(calls_per_s)
        self._on_call = on_call
        self._max_photo_bytes = max_photo_bytes
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

    @property
    def records_per_call(self) -> int:
        return 1

    @property
    def calls_per_s(self) -> float:
        return self._bucket.declared_per_s

    @property
    def bucket(self) -> TokenBucket:
        """The upload API's pacing: its current rate and how often the backend slowed it."""
        return self._bucket

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
                status_code=resp.status_code,
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

    async def _call(
        self,
        method: str,
        path: str,
        *,
        action: str,
        json: dict[str, Any],
        api: str = "",
        paced: bool = False,
    ) -> Any:
        """A call with the access token; on a token refusal, renew it and repeat the call once,
        so the call in flight is not lost to a token that expired under it. ``paced`` calls
        wait for the upload API's token bucket (the repeat too: it is another call)."""
        token = await self.access_token()
        data = await self._observed(method, path, action, token, json, api, paced)
        if data["errcode"] in _TOKEN_ERRCODES:
            log.info("token refused (errcode %d); renewing and repeating the call", data["errcode"])
            token = await self._renew_token(token)
            data = await self._observed(method, path, action, token, json, api, paced)
        return data

    async def _observed(
        self,
        method: str,
        path: str,
        action: str,
        token: str,
        json: dict[str, Any],
        api: str,
        paced: bool,
    ) -> dict[str, Any]:
        if paced:
            await self._bucket.acquire()
        try:
            data = await self._send(
                method, path, action=action, params={"access_token": token}, json=json
            )
        except CloudError as exc:
            if paced and exc.status_code == httpx.codes.TOO_MANY_REQUESTS:
                self._bucket.slow_down(exc.retry_after_s)
            self._observe(api, cause_of(exc))
            raise
        code = data["errcode"]
        self._observe(api, "ok" if code == ERR_OK else f"errcode_{code}")
        return data

    def _observe(self, api: str, result: str) -> None:
        if self._on_call is not None and api:
            self._on_call(api, result)

    # -- upload -------------------------------------------------------------------------------

    async def upload(self, records: Sequence[OutRecord]) -> list[UploadResult]:
        """One call per record, ``concurrency`` at a time; one result per record, in order.

        Each device's records go one after another in sequence order; once one of them must be
        retried, the device's later records wait (``deferred``) so they never overtake it.
        Raises :class:`CloudError` only when no call could be made at all (no token); every
        other failure becomes that record's ``retry`` result.
        """
        if not records:
            return []
        await self.access_token()
        results: dict[int, UploadResult] = {}

        async def chain(device_records: list[OutRecord]) -> None:
            blocked = False
            for rec in sorted(device_records, key=lambda r: r.seq):
                if blocked:
                    results[rec.record_id] = UploadResult(
                        rec.record_id,
                        UploadOutcome.DEFERRED,
                        "an earlier record of this device is to be retried first",
                    )
                    continue
                result = await self._upload_one(rec)
                results[rec.record_id] = result
                blocked = result.outcome is UploadOutcome.RETRY

        await asyncio.gather(*(chain(recs) for recs in by_device(records).values()))
        return [results[r.record_id] for r in records]

    async def _upload_one(self, rec: OutRecord) -> UploadResult:
        if rec.kind not in UPLOADABLE_KINDS:
            return UploadResult(
                rec.record_id,
                UploadOutcome.REFUSED,
                f"records of kind {rec.kind!r} have no upload API at this backend",
                cause="kind",
            )
        if not rec.person_id:
            return UploadResult(
                rec.record_id,
                UploadOutcome.REFUSED,
                "the record names no person (its credential matched nobody); nothing to upload",
                cause="no_person",
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
                    "POST",
                    UPLOAD_PATH,
                    action=f"uploading record {rec.record_id}",
                    json=payload,
                    api=UPLOAD_API,
                    paced=True,
                )
            except CloudError as exc:
                return UploadResult(
                    rec.record_id,
                    UploadOutcome.RETRY,
                    exc.message,
                    retry_after_s=exc.retry_after_s,
                    errcode=exc.errcode,
                    cause=cause_of(exc),
                )
        if data["errcode"] == ERR_RATE_LIMITED:
            self._bucket.slow_down(RATE_LIMIT_RETRY_S)
        elif data["errcode"] == ERR_OK:
            self._bucket.succeeded()
        return _upload_result(rec.record_id, data)

    # -- roster -------------------------------------------------------------------------------

    async def pull_roster(self, cursor: str | None) -> RosterPage:
        return await self._roster_page(cursor, None)

    async def pull_roster_changes(self, cursor: str | None, since_ms: int) -> RosterPage:
        """People changed at or after ``since_ms`` (``modified_since``, the simulator's
        addition to the user list), oldest change first."""
        return await self._roster_page(cursor, since_ms)

    async def _roster_page(self, cursor: str | None, since_ms: int | None) -> RosterPage:
        body: dict[str, Any] = {"size": ROSTER_PAGE_SIZE}
        if cursor:
            body["cursor"] = cursor
        if since_ms is not None:
            body["modified_since"] = since_ms
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
        avatars = {
            str(item["userid"]): str(item["avatar"])
            for item in result["list"]
            if isinstance(item, dict) and item.get("userid") and item.get("avatar")
        }
        stamps = [
            item["modified_time"]
            for item in result["list"]
            if isinstance(item, dict) and isinstance(item.get("modified_time"), int)
        ]
        return RosterPage(
            people, next_cursor if has_more else None, has_more, avatars, max(stamps, default=None)
        )

    # -- photos -------------------------------------------------------------------------------

    async def fetch_photo(self, url: str) -> bytes:
        """Download an enrolment photo (no token: avatar URLs are public, like a CDN's).

        Raises :class:`PhotoUnavailableError` when this URL will never give a usable photo
        (404/410, or more than ``max_photo_bytes``: the download stops there), and
        :class:`CloudError` for anything a later try may fix.
        """
        action = "downloading a photo"
        limit = self._max_photo_bytes
        async with self._slots:
            try:
                async with self._client.stream("GET", url) as resp:
                    where = resp.request.url.copy_with(query=None)
                    if resp.status_code in (httpx.codes.NOT_FOUND, httpx.codes.GONE):
                        raise PhotoUnavailableError(
                            f"{action}: HTTP {resp.status_code} from {where}",
                            reason="photo_missing",
                            request=resp.request,
                        )
                    if resp.status_code != httpx.codes.OK:
                        raise CloudResponseError(
                            f"{action}: HTTP {resp.status_code} from {where}",
                            request=resp.request,
                            retry_after_s=_retry_after_s(resp),
                        )
                    declared = resp.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > limit:
                        raise _too_large(where, int(declared), limit, resp.request)
                    chunks: list[bytes] = []
                    size = 0
                    async for chunk in resp.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise _too_large(where, size, limit, resp.request)
                        chunks.append(chunk)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise map_httpx_error(exc, action) from exc
        return b"".join(chunks)

    # -- leave --------------------------------------------------------------------------------

    async def leave(
        self, person_ids: Sequence[str], start_ms: int, end_ms: int
    ) -> list[LeaveRecord]:
        """Approved leave of ``person_ids`` overlapping ``[start_ms, end_ms]``: 100 people a
        call, each answer paged 20 records at a time (DingTalk's getleavestatus limits)."""
        out: list[LeaveRecord] = []
        ids = list(dict.fromkeys(person_ids))
        for first in range(0, len(ids), LEAVE_USERS_PER_CALL):
            chunk = ids[first : first + LEAVE_USERS_PER_CALL]
            offset = 0
            while True:
                body = {
                    "userid_list": ",".join(chunk),
                    "start_time": start_ms,
                    "end_time": end_ms,
                    "offset": offset,
                    "size": LEAVE_PAGE_SIZE,
                }
                async with self._slots:
                    data = await self._call(
                        "POST", LEAVE_STATUS_PATH, action="pulling leave", json=body
                    )
                code = data["errcode"]
                if code != ERR_OK:
                    raise CloudResponseError(
                        f"pulling leave: errcode {code}: {data.get('errmsg', '')}",
                        errcode=code,
                        retry_after_s=_RETRY_AFTER_S.get(code),
                    )
                result = data.get("result")
                items = result.get("leave_status") if isinstance(result, dict) else None
                if not isinstance(result, dict) or not isinstance(items, list):
                    raise CloudResponseError("pulling leave: the answer has no result.leave_status")
                page = [lv for lv in (_leave(item) for item in items) if lv is not None]
                if len(page) < len(items):
                    log.warning(
                        "leave page had %d unusable entries; skipped", len(items) - len(page)
                    )
                out.extend(page)
                if not result.get("has_more") or not items:
                    break
                offset += len(items)
        return out

    # -- attendance groups, meeting rooms, leave quotas (cloud_bridge.capabilities) ----------

    async def _ok(self, path: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """One call's answer; raises :class:`CloudError` for any errcode (transient unless the
        backend says the call can never succeed)."""
        async with self._slots:
            data: dict[str, Any] = await self._call("POST", path, action=action, json=body)
        code = data["errcode"]
        if code != ERR_OK:
            raise CloudResponseError(
                f"{action}: errcode {code}: {data.get('errmsg', '')}",
                errcode=code,
                retry_after_s=_RETRY_AFTER_S.get(code),
                transient=code not in _PERMANENT_ERRCODES,
            )
        return data

    async def _result(self, path: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """One pull call's ``result``; raises :class:`CloudError` for any errcode."""
        data = await self._ok(path, action, body)
        result = data.get("result")
        if not isinstance(result, dict):
            raise CloudResponseError(f"{action}: the answer has no result")
        return result

    async def _groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = []
        offset = 0
        while True:
            result = await self._result(
                pull.GROUPS_PATH,
                "pulling attendance groups",
                {"offset": offset, "size": pull.GROUPS_PAGE_SIZE},
            )
            page = result.get("groups")
            if not isinstance(page, list):
                raise CloudResponseError("pulling attendance groups: the answer has no groups")
            groups.extend(g for g in page if isinstance(g, dict) and "group_id" in g)
            if not result.get("has_more") or not page:
                return groups
            offset += len(page)

    async def shifts(self) -> list[tuple[str, Shift]]:
        """The classes of every attendance group, one shift per class and department."""
        return [s for g in await self._groups() for s in pull.shifts_of_group(g)]

    async def geofences(self) -> list[Geofence]:
        """The check-in positions of every attendance group, as circles; a name that two
        positions share is kept once (the first)."""
        fences: dict[str, Geofence] = {}
        for group in await self._groups():
            cursor: Any = 0
            while True:
                result = await self._result(
                    pull.POSITIONS_PATH,
                    f"pulling the check-in positions of attendance group {group['group_id']}",
                    {
                        "group_id": group["group_id"],
                        "cursor": cursor,
                        "size": pull.POSITIONS_PAGE_SIZE,
                    },
                )
                items = result.get("list")
                for fence in (pull.fence_of_position(i) for i in items or []):
                    if fence is not None:
                        fences.setdefault(fence.name, fence)
                cursor = result.get("next_cursor")
                if not result.get("has_more") or cursor is None or not items:
                    break
        return list(fences.values())

    async def rooms(self) -> list[Room]:
        rooms: list[Room] = []
        cursor: Any = 0
        while True:
            result = await self._result(
                pull.ROOMS_PATH,
                "pulling meeting rooms",
                {"cursor": cursor, "size": pull.ROOMS_PAGE_SIZE},
            )
            items = result.get("list")
            rooms.extend(r for r in (pull.room_of(i) for i in items or []) if r is not None)
            cursor = result.get("next_cursor")
            if not result.get("has_more") or cursor is None or not items:
                return rooms

    async def bookings(self, cursor: str | None, since_ms: int) -> BookingPage:
        body: dict[str, Any] = {"modified_since": since_ms, "size": pull.BOOKINGS_PAGE_SIZE}
        if cursor:
            body["cursor"] = cursor
        result = await self._result(pull.BOOKINGS_PATH, "pulling room bookings", body)
        items = result.get("list")
        if not isinstance(items, list):
            raise CloudResponseError("pulling room bookings: the answer has no result.list")
        bookings = [b for b in (pull.booking_of(i) for i in items) if b is not None]
        if len(bookings) < len(items):
            log.warning("booking page had %d unusable entries; skipped", len(items) - len(bookings))
        has_more = bool(result.get("has_more"))
        raw_next = result.get("next_cursor")
        next_cursor = str(raw_next) if has_more and raw_next not in (None, "") else None
        if has_more and next_cursor is None:
            raise CloudResponseError("pulling room bookings: has_more without a next_cursor")
        stamps = [
            i["modified_time"]
            for i in items
            if isinstance(i, dict) and isinstance(i.get("modified_time"), int)
        ]
        return BookingPage(bookings, next_cursor, has_more, max(stamps, default=None))

    async def leave_balances(self, person_ids: Sequence[str]) -> list[LeaveBalance]:
        """Every leave quota of ``person_ids``: 50 people a call, 50 quotas a page."""
        out: list[LeaveBalance] = []
        ids = list(dict.fromkeys(person_ids))
        for first in range(0, len(ids), pull.QUOTA_USERS_PER_CALL):
            chunk = ids[first : first + pull.QUOTA_USERS_PER_CALL]
            offset = 0
            while True:
                result = await self._result(
                    pull.QUOTA_PATH,
                    "pulling leave balances",
                    {"userids": ",".join(chunk), "offset": offset, "size": pull.QUOTA_PAGE_SIZE},
                )
                items = result.get("leave_quotas")
                if not isinstance(items, list):
                    raise CloudResponseError("pulling leave balances: the answer has no quotas")
                out.extend(b for b in (pull.balance_of(i) for i in items) if b is not None)
                if not result.get("has_more") or not items:
                    break
                offset += len(items)
        return out

    # -- meeting-room write-back and reminders (modelled paths: docs/cloud-bridge.md) --------

    async def write_room_change(self, change: RoomChange) -> None:
        """One panel change; the key makes a repeat (after a lost answer) harmless."""
        body: dict[str, Any] = {
            "idempotency_key": change.key,
            "op": change.op,
            "booking_id": change.booking_id,
            "room_id": change.room_id,
        }
        for name, value in (
            ("start_time", change.start_ms),
            ("end_time", change.end_ms),
            ("at_time", change.at_ms),
        ):
            if value is not None:
                body[name] = value
        await self._result(ROOM_CHANGE_PATH, f"writing room change {change.key}", body)

    async def notify(self, key: str, user_ids: Sequence[str], text: str) -> None:
        """A work notification (DingTalk's asyncsend_v2, text message) to ``user_ids``."""
        body = {
            "agent_id": NOTIFY_AGENT_ID,
            "userid_list": ",".join(user_ids),
            "msg": {"msgtype": "text", "text": {"content": text}},
            "idempotency_key": key,
        }
        await self._ok(NOTIFY_PATH, f"sending reminder {key}", body)

    async def upload_receipts(self, receipts: Sequence[OutReceipt]) -> list[ReceiptResult]:
        """One call per receipt (``concurrency`` at a time), one result per receipt in order;
        a failed call is that receipt's ``retry``, never an exception."""

        async def one(r: OutReceipt) -> ReceiptResult:
            body: dict[str, Any] = {
                "idempotency_key": r.idempotency_key,
                "notice_id": r.notice_id,
                "device_id": r.device_id,
                "read_time": r.receipt_ts_ms,
            }
            if r.person_id:
                body["userid"] = r.person_id
            if r.by:
                body["reader_credential"] = r.by
            action = f"uploading receipt {r.idempotency_key}"
            try:
                async with self._slots:
                    data = await self._call("POST", RECEIPT_PATH, action=action, json=body)
            except CloudError as exc:
                return ReceiptResult(
                    r.idempotency_key,
                    UploadOutcome.RETRY,
                    exc.message,
                    exc.retry_after_s,
                    cause_of(exc),
                )
            result = _upload_result(0, data)
            return ReceiptResult(
                r.idempotency_key, result.outcome, result.reason, result.retry_after_s, result.cause
            )

        return list(await asyncio.gather(*(one(r) for r in receipts)))


def _upload_result(record_id: int, data: dict[str, Any]) -> UploadResult:
    code = int(data["errcode"])
    if code == ERR_OK:
        result = data.get("result")
        duplicate = isinstance(result, dict) and bool(result.get("duplicate"))
        outcome = UploadOutcome.DUPLICATE if duplicate else UploadOutcome.ACCEPTED
        return UploadResult(record_id, outcome, errcode=code)
    reason = f"errcode {code}: {data.get('errmsg', '')}"
    if code in _PERMANENT_ERRCODES:
        return UploadResult(
            record_id, UploadOutcome.REFUSED, reason, errcode=code, cause=f"errcode_{code}"
        )
    # Unknown codes are retried, not refused: a record kept pending can still be sent once the
    # cause is understood; a record marked failed would need a person to notice it.
    return UploadResult(
        record_id,
        UploadOutcome.RETRY,
        reason,
        retry_after_s=_RETRY_AFTER_S.get(code),
        errcode=code,
        cause=f"errcode_{code}",
    )


def by_device(records: Sequence[OutRecord]) -> dict[str, list[OutRecord]]:
    """The records grouped by device, each group in the order given."""
    groups: dict[str, list[OutRecord]] = {}
    for rec in records:
        groups.setdefault(rec.device_id, []).append(rec)
    return groups


def _retry_after_s(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:  # an HTTP date; the runner's own backoff applies
        return None


def _too_large(where: object, size: int, limit: int, request: httpx.Request) -> CloudError:
    return PhotoUnavailableError(
        f"downloading a photo: {where} is over {limit} bytes ({size} so far); "
        "face.max_bytes is the limit",
        reason="image_too_large",
        request=request,
    )


def _leave(item: object) -> LeaveRecord | None:
    if not isinstance(item, dict) or not item.get("userid"):
        return None
    start, end = item.get("start_time"), item.get("end_time")
    if not isinstance(start, int) or not isinstance(end, int) or end <= start:
        return None
    return LeaveRecord(str(item["userid"]), start, end, str(item.get("leave_type") or ""))


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
