"""The simulator's write APIs for meeting rooms: booking changes made at a room panel, and work
notifications (meeting reminders) to attendees.

Both are *modelled* on DingTalk's open API, not copied from it: ``/topapi/meetingroom/booking/
change`` does not exist under that name at DingTalk (its meeting-room write calls differ per
product edition), and ``/topapi/message/corpconversation/asyncsend_v2`` is DingTalk's real work
notification path with a simplified body. What the simulator insists on is the contract the
gateway relies on: every call carries an ``idempotency_key``, and a key seen before is answered
with the first answer and changes nothing. ``drop_answers`` makes the next answers get lost
*after* the change was applied (a 503 from a proxy that timed out), which is exactly the case
idempotency keys exist for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from simulators.backend.directory import Directory
from simulators.backend.state import BackendState, Errcode
from simulators.backend.write_api import lost_answer, read_body

CHANGE_PATH = "/topapi/meetingroom/booking/change"
NOTIFY_PATH = "/topapi/message/corpconversation/asyncsend_v2"
OPS = ("checkin", "release", "book", "extend", "end", "cancel")


class _Change(BaseModel):
    model_config = ConfigDict(extra="ignore")
    idempotency_key: str = Field(min_length=1, max_length=200)
    op: str
    booking_id: str = Field(min_length=1, max_length=64)
    room_id: str = Field(min_length=1, max_length=64)
    start_time: int | None = None
    end_time: int | None = None
    at_time: int | None = None


class _Text(BaseModel):
    content: str = Field(min_length=1, max_length=5000)


class _Msg(BaseModel):
    msgtype: str
    text: _Text


class _Notify(BaseModel):
    model_config = ConfigDict(extra="ignore")
    agent_id: int
    userid_list: str = Field(min_length=1)
    msg: _Msg
    idempotency_key: str = Field(min_length=1, max_length=200)


@dataclass
class RoomWrites:
    """What the gateway wrote: changes and notifications by key, each applied once."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    notifications: dict[str, dict[str, Any]] = field(default_factory=dict)
    calls: int = 0
    drop_answers: int = 0

    def answer_lost(self) -> bool:
        """Count a call; ``True`` when its answer is to be lost (after the work was done)."""
        with self._lock:
            self.calls += 1
            if self.drop_answers > 0:
                self.drop_answers -= 1
                return True
            return False

    def change(self, c: _Change, directory: Directory) -> dict[str, Any]:
        with self._lock:
            first = self.changes.get(c.idempotency_key)
            if first is not None:
                return first
            result = _apply(c, directory)
            self.changes[c.idempotency_key] = result
            return result

    def notify(self, n: _Notify) -> dict[str, Any]:
        with self._lock:
            first = self.notifications.get(n.idempotency_key)
            if first is not None:
                return first
            result = {
                "task_id": len(self.notifications) + 1,
                "userids": n.userid_list.split(","),
                "text": n.msg.text.content,
            }
            self.notifications[n.idempotency_key] = result
            return result

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "changes": dict(self.changes),
                "notifications": dict(self.notifications),
                "calls": self.calls,
            }


def _apply(c: _Change, directory: Directory) -> dict[str, Any]:
    """Apply one change to the directory's bookings (a release frees the slot: cancelled)."""
    if c.op not in OPS:
        raise ValueError(f"op must be one of {', '.join(OPS)}")
    current = directory.booking(c.booking_id)
    if c.op == "book":
        if c.start_time is None or c.end_time is None:
            raise ValueError("book needs start_time and end_time")
        directory.put_booking(c.booking_id, c.room_id, c.start_time, c.end_time)
    elif current is None:
        raise LookupError(f"no booking {c.booking_id}")
    elif c.op in ("release", "cancel"):
        directory.cancel_booking(c.booking_id)
    elif c.op in ("extend", "end", "checkin"):
        end = current["end_time"] if c.end_time is None else c.end_time
        start = current["start_time"]
        directory.put_booking(
            c.booking_id,
            current["room_id"],
            start,
            max(end, start + 1),
            subject=current["subject"],
            organizer=current["organizer_userid"],
            attendees=current["attendee_userids"],
        )
    return {"booking_id": c.booking_id, "op": c.op, "at_time": c.at_time}


def add_room_write_routes(app: FastAPI, state: BackendState, writes: RoomWrites) -> None:
    """Add the write APIs and their ``/_sim/`` controls to the simulator's app."""

    @app.post(CHANGE_PATH, response_model=None)
    async def change(request: Request, access_token: str | None = None) -> Any:
        c = await read_body(state, _Change, request, access_token)
        if not isinstance(c, _Change):
            return c
        try:
            result = writes.change(c, state.directory)
        except (ValueError, LookupError) as exc:
            return {"errcode": Errcode.INVALID_PARAMETER, "errmsg": f"invalid parameter: {exc}"}
        if writes.answer_lost():
            return lost_answer()
        return {"errcode": 0, "errmsg": "ok", "result": result}

    @app.post(NOTIFY_PATH, response_model=None)
    async def notify(request: Request, access_token: str | None = None) -> Any:
        n = await read_body(state, _Notify, request, access_token)
        if not isinstance(n, _Notify):
            return n
        result = writes.notify(n)
        if writes.answer_lost():
            return lost_answer()
        return {"errcode": 0, "errmsg": "ok", "task_id": result["task_id"]}

    @app.get("/_sim/meetingrooms/writes")
    async def sim_writes() -> dict[str, Any]:
        return writes.snapshot()

    @app.put("/_sim/meetingrooms/drop_answers", response_model=None)
    async def sim_drop(count: int = 1) -> dict[str, Any]:
        writes.drop_answers = max(0, count)
        return {"drop_answers": writes.drop_answers}
