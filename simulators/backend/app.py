"""The backend simulator's HTTP app: a DingTalk-style open API subset plus ``/_sim/`` controls.

Like DingTalk, API errors are HTTP 200 with a non-zero ``errcode``; only the ``fail_status``
and outage faults produce a real HTTP error. ``docs/cloud-bridge.md`` lists the endpoints and
errcodes. Besides the DingTalk-style one-record upload there is a WeCom-style batch upload
(``/cgi-bin/checkin/hardware_report``: up to 100 records a call, an answer per record).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.types import Receive, Scope, Send

from simulators.backend.pull_api import add_pull_routes
from simulators.backend.receipts import ReceiptBook, add_receipt_routes
from simulators.backend.room_writes import RoomWrites, add_room_write_routes
from simulators.backend.state import (
    BATCH_API,
    DEFAULT_PAGE_SIZE,
    MAX_BATCH_RECORDS,
    MAX_LEAVE_PAGE,
    MAX_LEAVE_USERS,
    MAX_PAGE_SIZE,
    UPLOAD_API,
    BackendState,
    Errcode,
    Faults,
)

HOLD_POLL_S = 0.05  # how quickly a held upload notices that a test cleared the fault
HANG_S = 120.0  # the ``timeouts`` fault: longer than any client waits
BATCH_PATH = "/cgi-bin/checkin/hardware_report"


class _Upload(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userid: str = Field(min_length=1, max_length=64)
    device_id: str = Field(min_length=1, max_length=64)
    device_name: str = Field(min_length=1, max_length=128)
    user_check_time: int = Field(gt=0)
    idempotency_key: str = Field(min_length=1, max_length=200)
    photo_url: str | None = None


class _BatchRecord(BaseModel):
    """One record of the WeCom-style batch; ``checkin_time`` is in seconds, as WeCom's are."""

    model_config = ConfigDict(extra="ignore")

    userid: str = Field(min_length=1, max_length=64)
    device_id: str = Field(min_length=1, max_length=64)
    checkin_time: int = Field(gt=0)
    idempotency_key: str = Field(min_length=1, max_length=200)


class _Batch(BaseModel):
    model_config = ConfigDict(extra="ignore")

    records: list[_BatchRecord] = Field(min_length=1)


class _UserList(BaseModel):
    model_config = ConfigDict(extra="ignore")

    cursor: str | int | None = None
    size: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    # The simulator's addition: only people changed since (ms), oldest change first.
    modified_since: int | None = Field(None, ge=0)


class _LeaveStatus(BaseModel):
    """DingTalk's getleavestatus body: ``userid_list`` is one comma-separated string."""

    model_config = ConfigDict(extra="ignore")

    userid_list: str = Field(min_length=1)
    start_time: int = Field(ge=0)
    end_time: int = Field(ge=0)
    offset: int = Field(0, ge=0)
    size: int = Field(MAX_LEAVE_PAGE, ge=1, le=MAX_LEAVE_PAGE)


class _NewLeave(BaseModel):
    model_config = ConfigDict(extra="forbid")

    userid: str = Field(min_length=1)
    start_time: int = Field(ge=0)
    end_time: int = Field(ge=0)
    leave_type: str = "annual"


class _Person(BaseModel):
    model_config = ConfigDict(extra="ignore")

    userid: str = Field(min_length=1)
    name: str = ""
    card: str | None = None
    job_number: str | None = None
    dept: str = ""
    active: bool = True


class _Roster(BaseModel):
    people: list[_Person]


class _Faults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hold_after_commit_s: float = Field(0.0, ge=0)
    fail_status: int = Field(0, ge=0)
    fail_status_code: int = Field(500, ge=400, le=599)
    throttle: int = Field(0, ge=0)
    latency_ms: int = Field(0, ge=0)
    fail_photos: int = Field(0, ge=0)
    retry_after_s: float = Field(0.0, ge=0)
    timeouts: int = Field(0, ge=0)
    expire_tokens_after: int = Field(0, ge=0)
    drop_after_commit: int = Field(0, ge=0)
    clock_skew_ms: int = 0
    outage_until_ms: int = Field(0, ge=0)


class _Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_limit_per_s: int = Field(ge=0)


class _Tokens(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_s: float | None = Field(None, gt=0)
    expire: bool = False
    revoke: bool = False


def _err(errcode: int, errmsg: str) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": errmsg}


def _invalid(exc: ValidationError) -> dict[str, Any]:
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "body"
    return _err(Errcode.INVALID_PARAMETER, f"invalid parameter {field}: {first['msg']}")


class _DroppedResponse(Response):
    """Headers promising a body that never comes: the server closes the connection, so the
    client sees a broken answer to a call the backend has already committed."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"errcode":0', "more_body": False})


def _unavailable() -> JSONResponse:
    return JSONResponse(
        {"errcode": Errcode.SYSTEM_BUSY, "errmsg": "simulated outage"}, status_code=503
    )


async def _json_body(request: Request) -> Any:
    try:
        return await request.json()
    except ValueError:
        return None


def create_app(state: BackendState) -> FastAPI:
    app = FastAPI(title="Tack backend simulator", docs_url=None, redoc_url=None)
    app.state.backend = state
    app.state.room_writes = RoomWrites()
    add_room_write_routes(app, state, app.state.room_writes)
    app.state.receipts = ReceiptBook()
    add_receipt_routes(app, state, app.state.receipts)

    @app.get("/gettoken")
    async def gettoken(appkey: str = "", appsecret: str = "") -> Any:
        if state.in_outage():
            return _unavailable()
        issued = state.issue_token(appkey, appsecret)
        if issued is None:
            return _err(Errcode.INVALID_APP_CREDENTIALS, "invalid appkey or appsecret")
        token, ttl_s = issued
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": ttl_s}

    def token_error(access_token: str | None) -> dict[str, Any] | None:
        code = state.check_token(access_token)
        if code == Errcode.INVALID_TOKEN:
            return _err(code, "invalid access_token")
        if code == Errcode.TOKEN_EXPIRED:
            return _err(code, "access_token expired")
        return None

    async def upload_gate(api: str, access_token: str | None) -> tuple[Any, Faults]:
        """The checks every upload call meets before its body is read: outage, the one-shot
        faults, the token and the rate limit. Returns an answer to give at once (or None)."""
        if state.in_outage():
            return _unavailable(), state.faults
        faults = state.count_upload_call(api)
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.fail_status:
            headers = {"Retry-After": f"{faults.retry_after_s:g}"} if faults.retry_after_s else {}
            return JSONResponse(
                {"errcode": Errcode.SYSTEM_BUSY, "errmsg": "simulated server error"},
                status_code=faults.fail_status_code,
                headers=headers,
            ), faults
        if faults.timeouts:
            await _hold(state, HANG_S)
            return _err(Errcode.SYSTEM_BUSY, "answered after the client gave up"), faults
        if (bad := token_error(access_token)) is not None:
            return bad, faults
        limited = Errcode.RATE_LIMITED if api == UPLOAD_API else Errcode.API_FREQ_OUT_OF_LIMIT
        if faults.throttle or not state.admit(api):
            return _err(limited, "too many calls; retry after 1 s"), faults
        return None, faults

    @app.post("/topapi/attendance/record/upload", response_model=None)
    async def upload(request: Request, access_token: str | None = None) -> Any:
        early, faults = await upload_gate(UPLOAD_API, access_token)
        if early is not None:
            return early
        body = await _json_body(request)
        if not isinstance(body, dict):
            return _err(Errcode.INVALID_PARAMETER, "invalid parameter body: not a JSON object")
        try:
            rec = _Upload.model_validate(body)
        except ValidationError as exc:
            return _invalid(exc)
        if not state.knows_user(rec.userid):
            return _err(Errcode.UNKNOWN_USERID, f"unknown userid {rec.userid}")
        if state.too_old(rec.user_check_time):
            return _err(
                Errcode.CHECK_TIME_OUT_OF_RANGE,
                "user_check_time is more than 180 days old",
            )
        stored, duplicate = state.store_record(
            idempotency_key=rec.idempotency_key,
            userid=rec.userid,
            device_id=rec.device_id,
            device_name=rec.device_name,
            user_check_time=rec.user_check_time,
            photo_url=rec.photo_url,
        )
        if faults.hold_after_commit_s:
            await _hold(state, faults.hold_after_commit_s)
        if faults.drop_after_commit:
            return _DroppedResponse()
        return {
            "errcode": 0,
            "errmsg": "ok",
            "result": {"duplicate": duplicate},
            "request_id": stored.request_id if not duplicate else uuid.uuid4().hex,
        }

    @app.post(BATCH_PATH, response_model=None)
    async def batch_upload(request: Request, access_token: str | None = None) -> Any:
        """WeCom-style: up to 100 records a call; the call succeeds as a whole and answers
        each record on its own (stored, duplicate, or refused with an errcode)."""
        early, faults = await upload_gate(BATCH_API, access_token)
        if early is not None:
            return early
        body = await _json_body(request)
        if isinstance(body, dict) and len(body.get("records") or []) > MAX_BATCH_RECORDS:
            return _err(
                Errcode.INVALID_PARAMETER,
                f"invalid parameter records: at most {MAX_BATCH_RECORDS} records a call",
            )
        try:
            batch = _Batch.model_validate(body if isinstance(body, dict) else {})
        except ValidationError as exc:
            return _invalid(exc)
        results: list[dict[str, Any]] = []
        for rec in batch.records:
            if not state.knows_user(rec.userid):
                results.append(_err(Errcode.UNKNOWN_USERID, f"unknown userid {rec.userid}"))
                continue
            if state.too_old(rec.checkin_time * 1000):
                results.append(
                    _err(Errcode.CHECK_TIME_OUT_OF_RANGE, "checkin_time is more than 180 days old")
                )
                continue
            _, duplicate = state.store_record(
                idempotency_key=rec.idempotency_key,
                userid=rec.userid,
                device_id=rec.device_id,
                device_name=rec.device_id,
                user_check_time=rec.checkin_time * 1000,
                photo_url=None,
            )
            results.append({"errcode": 0, "errmsg": "ok", "duplicate": duplicate})
        if faults.hold_after_commit_s:
            await _hold(state, faults.hold_after_commit_s)
        if faults.drop_after_commit:
            return _DroppedResponse()
        # A JSONResponse skips FastAPI's generic encoder, which cost more than the batch itself.
        return JSONResponse(
            {
                "errcode": 0,
                "errmsg": "ok",
                "results": [{"index": i, **r} for i, r in enumerate(results)],
            }
        )

    @app.post("/topapi/v2/user/list", response_model=None)
    async def user_list(request: Request, access_token: str | None = None) -> Any:
        if state.in_outage():
            return _unavailable()
        if (bad := token_error(access_token)) is not None:
            return bad
        body = await _json_body(request)
        try:
            query = _UserList.model_validate(body if isinstance(body, dict) else {})
        except ValidationError as exc:
            return _invalid(exc)
        cursor = str(query.cursor) if query.cursor not in (None, "", 0) else None
        try:
            people, next_cursor = state.roster_page(cursor, query.size, query.modified_since)
        except ValueError as exc:
            return _err(Errcode.INVALID_PARAMETER, f"invalid parameter cursor: {exc}")
        base = str(request.base_url).rstrip("/")
        for p in people:
            if p.get("avatar"):
                p["avatar"] = base + p["avatar"]
        return {
            "errcode": 0,
            "errmsg": "ok",
            "result": {
                "list": people,
                "has_more": next_cursor is not None,
                "next_cursor": next_cursor,
            },
        }

    @app.post("/topapi/attendance/getleavestatus", response_model=None)
    async def leave_status(request: Request, access_token: str | None = None) -> Any:
        if state.in_outage():
            return _unavailable()
        if (bad := token_error(access_token)) is not None:
            return bad
        body = await _json_body(request)
        try:
            query = _LeaveStatus.model_validate(body if isinstance(body, dict) else {})
        except ValidationError as exc:
            return _invalid(exc)
        userids = [u for u in query.userid_list.split(",") if u]
        if len(userids) > MAX_LEAVE_USERS:
            return _err(
                Errcode.INVALID_PARAMETER,
                f"invalid parameter userid_list: at most {MAX_LEAVE_USERS} userids",
            )
        if query.end_time < query.start_time:
            return _err(Errcode.INVALID_PARAMETER, "invalid parameter end_time: before start_time")
        leaves, has_more = state.leave_status(
            userids, query.start_time, query.end_time, query.offset, query.size
        )
        return {
            "errcode": 0,
            "errmsg": "ok",
            "success": True,
            "result": {
                "has_more": has_more,
                "leave_status": [
                    {
                        "userid": lv.userid,
                        "start_time": lv.start_ms,
                        "end_time": lv.end_ms,
                        "duration_unit": "percent_day",
                        "duration_percent": _percent_days(lv.start_ms, lv.end_ms),
                        "leave_type": lv.leave_type,
                    }
                    for lv in leaves
                ],
            },
        }

    # -- inspection and control for tests and the CLI ----------------------------------------

    @app.get("/_sim/photos/{userid}.jpg", response_model=None)
    async def sim_photo(userid: str) -> Any:
        """The avatar URLs of the user list point here; like a CDN, no token is needed."""
        photo, fail = state.fetch_photo(userid)
        if fail:
            return Response(b"simulated outage", status_code=503, media_type="text/plain")
        if photo is None:
            return Response(b"no such photo", status_code=404, media_type="text/plain")
        return Response(photo, media_type="image/jpeg")

    @app.put("/_sim/photos/{userid}", response_model=None)
    async def sim_set_photo(userid: str, request: Request) -> dict[str, Any]:
        body = await request.body()
        state.set_photo(userid, body or None)
        return {"userid": userid, "bytes": len(body)}

    @app.post("/_sim/leave", response_model=None)
    async def sim_leave(leave: _NewLeave) -> Any:
        try:
            state.add_leave(leave.userid, leave.start_time, leave.end_time, leave.leave_type)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        return {"leave": state.snapshot()["leave"]}

    @app.get("/_sim/state")
    async def sim_state() -> dict[str, Any]:
        return state.snapshot()

    @app.get("/_sim/records")
    async def sim_records() -> dict[str, Any]:
        records = state.records()
        return {
            "count": len(records),
            "max_stored_per_key": max((r["stored"] for r in records), default=0),
            "records": records,
        }

    @app.put("/_sim/roster", response_model=None)
    async def sim_roster(roster: _Roster) -> dict[str, Any]:
        n = state.set_roster([p.model_dump() for p in roster.people])
        return {"people": n}

    @app.put("/_sim/faults", response_model=None)
    async def sim_faults(faults: _Faults) -> dict[str, Any]:
        state.set_faults(Faults(**faults.model_dump()))
        return {"faults": faults.model_dump()}

    @app.put("/_sim/limits", response_model=None)
    async def sim_limits(limits: _Limits) -> dict[str, Any]:
        state.set_rate_limit(limits.rate_limit_per_s)
        return {"rate_limit_per_s": state.rate_limit_per_s}

    @app.post("/_sim/tokens", response_model=None)
    async def sim_tokens(tokens: _Tokens) -> dict[str, Any]:
        if tokens.ttl_s is not None:
            state.set_token_ttl(tokens.ttl_s)
        expired = state.expire_tokens() if tokens.expire else 0
        revoked = state.revoke_tokens() if tokens.revoke else 0
        return {"token_ttl_s": state.token_ttl_s, "expired": expired, "revoked": revoked}

    @app.post("/_sim/reset")
    async def sim_reset() -> dict[str, Any]:
        state.reset()
        return {"ok": True}

    add_pull_routes(app, state)
    return app


def _percent_days(start_ms: int, end_ms: int) -> int:
    """DingTalk's duration in hundredths of a day (100 = one full day)."""
    return round((end_ms - start_ms) * 100 / 86_400_000)


async def _hold(state: BackendState, hold_s: float) -> None:
    """Wait ``hold_s`` after storing, or less if a test changes the faults meanwhile."""
    generation = state.fault_generation
    deadline = time.monotonic() + hold_s
    # Faults may change from the test's thread, where an asyncio.Event cannot be set: poll.
    while time.monotonic() < deadline and state.fault_generation == generation:  # noqa: ASYNC110
        await asyncio.sleep(HOLD_POLL_S)
