"""The simulator's pull APIs besides the roster and leave: attendance groups and their check-in
positions, meeting rooms and bookings, leave quotas; and the ``/_sim/`` calls that set them.

DingTalk-style in shape: ``POST`` with the token in the query string, errors as HTTP 200 with an
``errcode``, pages with ``has_more`` and a cursor. ``docs/cloud-bridge.md`` lists the bodies and
answers, and where the simulator simplifies DingTalk's own.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulators.backend.directory import (
    MAX_BOOKINGS_PAGE,
    MAX_GROUPS_PAGE,
    MAX_POSITIONS_PAGE,
    MAX_QUOTA_PAGE,
    MAX_QUOTA_USERS,
    MAX_ROOMS_PAGE,
)
from simulators.backend.state import BackendState, Errcode

M = TypeVar("M", bound=BaseModel)

GROUPS_PATH = "/topapi/attendance/getsimplegroups"
POSITIONS_PATH = "/topapi/attendance/group/positions/query"
ROOMS_PATH = "/topapi/meetingroom/list"
BOOKINGS_PATH = "/topapi/meetingroom/booking/list"
QUOTA_PATH = "/topapi/attendance/vacation/quota/list"


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Groups(_Body):
    offset: int = Field(0, ge=0)
    size: int = Field(MAX_GROUPS_PAGE, ge=1, le=MAX_GROUPS_PAGE)


class _Positions(_Body):
    group_id: int
    cursor: int = Field(0, ge=0)
    size: int = Field(MAX_POSITIONS_PAGE, ge=1, le=MAX_POSITIONS_PAGE)


class _Rooms(_Body):
    cursor: int = Field(0, ge=0)
    size: int = Field(MAX_ROOMS_PAGE, ge=1, le=MAX_ROOMS_PAGE)


class _Bookings(_Body):
    modified_since: int = Field(0, ge=0)
    cursor: str | None = None
    size: int = Field(MAX_BOOKINGS_PAGE, ge=1, le=MAX_BOOKINGS_PAGE)


class _Quotas(_Body):
    userids: str = Field(min_length=1)
    leave_code: str | None = None
    offset: int = Field(0, ge=0)
    size: int = Field(MAX_QUOTA_PAGE, ge=1, le=MAX_QUOTA_PAGE)


class _Class(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_id: int
    class_name: str = Field(min_length=1, max_length=32)
    on_duty: str = Field(pattern=r"^\d{2}:\d{2}$")
    off_duty: str = Field(pattern=r"^\d{2}:\d{2}$")
    permit_late_minutes: int = Field(5, ge=0, le=240)
    permit_early_minutes: int = Field(0, ge=0, le=240)
    on_duty_begin_minutes: int = Field(240, ge=0, le=720)
    off_duty_end_minutes: int = Field(480, ge=0, le=720)


class _Position(BaseModel):
    model_config = ConfigDict(extra="forbid")

    position_id: str = Field(min_length=1)
    title: str = ""
    address: str = ""
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    offset: int = Field(ge=1, description="Radius in metres.")


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group_id: int
    group_name: str = Field(min_length=1)
    dept_name_list: list[str] = []
    work_day_list: list[int] = [1, 2, 3, 4, 5]
    classes: list[_Class] = []
    positions: list[_Position] = []


class _GroupList(BaseModel):
    groups: list[_Group]


class _Room(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room_id: str = Field(min_length=1)
    room_name: str = Field(min_length=1)
    room_capacity: int = Field(0, ge=0)
    room_location: str = ""
    room_status: int = Field(1, ge=0, le=1)


class _RoomList(BaseModel):
    rooms: list[_Room]


class _Booking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room_id: str = Field(min_length=1)
    start_time: int = Field(ge=0)
    end_time: int = Field(ge=0)
    subject: str = ""
    organizer_userid: str = ""
    attendee_userids: list[str] = []


class _Quota(BaseModel):
    model_config = ConfigDict(extra="forbid")

    userid: str = Field(min_length=1)
    leave_code: str = Field(min_length=1)
    unit: str = Field("day", pattern="^(day|hour)$")
    quota: float
    used: float = 0.0


class _QuotaList(BaseModel):
    quotas: list[_Quota]


def _err(errcode: int, errmsg: str) -> dict[str, Any]:
    return {"errcode": errcode, "errmsg": errmsg}


def _ok(result: dict[str, Any]) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", "result": result}


def add_pull_routes(app: FastAPI, state: BackendState) -> None:
    """Add the pull APIs and their ``/_sim/`` controls to the simulator's app."""
    directory = state.directory

    async def query(
        api: str, model: type[M], request: Request, access_token: str | None
    ) -> M | Any:
        """The body as ``model``, or the answer to give instead (outage, token, bad body)."""
        if state.in_outage():
            return JSONResponse(_err(Errcode.SYSTEM_BUSY, "simulated outage"), status_code=503)
        code = state.check_token(access_token)
        if code != Errcode.OK:
            expired = code == Errcode.TOKEN_EXPIRED
            return _err(code, "access_token expired" if expired else "invalid access_token")
        denied = directory.count(api)
        if denied is not None:
            return _err(denied, f"no permission for this API ({api})")
        try:
            body = await request.json()
        except ValueError:
            body = None
        try:
            return model.model_validate(body if isinstance(body, dict) else {})
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "body"
            return _err(Errcode.INVALID_PARAMETER, f"invalid parameter {field}: {first['msg']}")

    @app.post(GROUPS_PATH, response_model=None)
    async def groups(request: Request, access_token: str | None = None) -> Any:
        q = await query("groups", _Groups, request, access_token)
        if not isinstance(q, _Groups):
            return q
        page, more = directory.groups_page(q.offset, q.size)
        return _ok({"groups": page, "has_more": more})

    @app.post(POSITIONS_PATH, response_model=None)
    async def positions(request: Request, access_token: str | None = None) -> Any:
        q = await query("positions", _Positions, request, access_token)
        if not isinstance(q, _Positions):
            return q
        found = directory.positions_page(q.group_id, q.cursor, q.size)
        if found is None:
            return _err(Errcode.INVALID_PARAMETER, f"invalid parameter group_id: {q.group_id}")
        page, next_cursor = found
        return _ok({"list": page, "has_more": next_cursor is not None, "next_cursor": next_cursor})

    @app.post(ROOMS_PATH, response_model=None)
    async def rooms(request: Request, access_token: str | None = None) -> Any:
        q = await query("rooms", _Rooms, request, access_token)
        if not isinstance(q, _Rooms):
            return q
        page, next_cursor = directory.rooms_page(q.cursor, q.size)
        return _ok({"list": page, "has_more": next_cursor is not None, "next_cursor": next_cursor})

    @app.post(BOOKINGS_PATH, response_model=None)
    async def bookings(request: Request, access_token: str | None = None) -> Any:
        q = await query("bookings", _Bookings, request, access_token)
        if not isinstance(q, _Bookings):
            return q
        try:
            page, next_cursor = directory.bookings_page(q.modified_since, q.cursor, q.size)
        except ValueError as exc:
            return _err(Errcode.INVALID_PARAMETER, f"invalid parameter cursor: {exc}")
        return _ok({"list": page, "has_more": next_cursor is not None, "next_cursor": next_cursor})

    @app.post(QUOTA_PATH, response_model=None)
    async def quotas(request: Request, access_token: str | None = None) -> Any:
        q = await query("quotas", _Quotas, request, access_token)
        if not isinstance(q, _Quotas):
            return q
        userids = [u for u in q.userids.split(",") if u]
        if len(userids) > MAX_QUOTA_USERS:
            return _err(
                Errcode.INVALID_PARAMETER,
                f"invalid parameter userids: at most {MAX_QUOTA_USERS} userids",
            )
        page, more = directory.quotas_page(userids, q.leave_code, q.offset, q.size)
        return _ok({"leave_quotas": page, "has_more": more})

    # -- controls -----------------------------------------------------------------------------

    @app.put("/_sim/attendance/groups", response_model=None)
    async def sim_groups(body: _GroupList) -> dict[str, Any]:
        return {"groups": directory.set_groups([g.model_dump() for g in body.groups])}

    @app.put("/_sim/meetingrooms", response_model=None)
    async def sim_rooms(body: _RoomList) -> dict[str, Any]:
        return {"rooms": directory.set_rooms([r.model_dump() for r in body.rooms])}

    @app.put("/_sim/meetingrooms/bookings/{booking_id}", response_model=None)
    async def sim_put_booking(booking_id: str, body: _Booking) -> Any:
        try:
            return directory.put_booking(
                booking_id,
                body.room_id,
                body.start_time,
                body.end_time,
                subject=body.subject,
                organizer=body.organizer_userid,
                attendees=body.attendee_userids,
            )
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.delete("/_sim/meetingrooms/bookings/{booking_id}", response_model=None)
    async def sim_cancel_booking(booking_id: str) -> Any:
        if not directory.cancel_booking(booking_id):
            return JSONResponse({"detail": f"no booking {booking_id}"}, status_code=404)
        return {"cancelled": booking_id}

    @app.put("/_sim/vacation/quotas", response_model=None)
    async def sim_quotas(body: _QuotaList) -> dict[str, Any]:
        return {"quotas": directory.set_quotas([q.model_dump() for q in body.quotas])}

    @app.get("/_sim/directory")
    async def sim_directory() -> dict[str, Any]:
        return directory.snapshot()
