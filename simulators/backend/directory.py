"""What the backend simulator hands down besides the roster: attendance groups (shifts and
check-in locations), meeting rooms and their bookings, and leave quotas.

Kept apart from :class:`~simulators.backend.state.BackendState`'s upload-side memory; the state
owns one :class:`Directory` (``state.directory``) and lends it its clock, so modification times
follow the backend's clock like everything else. Like the state, every method takes one lock:
the HTTP app runs in uvicorn's thread while a test seeds from its own.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_GROUPS_PAGE = 10  # getsimplegroups pages attendance groups 10 at a time
MAX_POSITIONS_PAGE = 100
MAX_ROOMS_PAGE = 100
MAX_BOOKINGS_PAGE = 100
MAX_QUOTA_USERS = 50  # vacation/quota/list takes at most 50 userids a call
MAX_QUOTA_PAGE = 50
CONFIRMED = "confirmed"
CANCELLED = "cancelled"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Directory:
    clock: Callable[[], int] = _now_ms
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _groups: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _rooms: list[dict[str, Any]] = field(default_factory=list, repr=False)
    _bookings: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _quotas: list[dict[str, Any]] = field(default_factory=list, repr=False)
    calls: dict[str, int] = field(default_factory=dict, repr=False)
    _last_stamp: int = 0
    _denied: dict[str, int] = field(default_factory=dict, repr=False)

    def _stamp(self) -> int:
        """A modification time after every one given out before (call with the lock held), as
        the roster's: a change after a reader's last page always sorts after what it read."""
        self._last_stamp = max(self.clock(), self._last_stamp + 1)
        return self._last_stamp

    def count(self, api: str) -> int | None:
        """Count one call of ``api``; the errcode to answer it with when it is denied."""
        with self._lock:
            self.calls[api] = self.calls.get(api, 0) + 1
            return self._denied.get(api)

    def deny(self, api: str, errcode: int | None) -> None:
        """Answer every call of ``api`` (``groups``, ``positions``, ``rooms``, ``bookings``,
        ``quotas``) with ``errcode`` until called again with None: an API the app was not given
        permission for."""
        with self._lock:
            if errcode is None:
                self._denied.pop(api, None)
            else:
                self._denied[api] = errcode

    # -- attendance groups --------------------------------------------------------------------

    def set_groups(self, groups: list[dict[str, Any]]) -> int:
        """Replace the attendance groups. A group: ``{"group_id", "group_name",
        "dept_name_list", "work_day_list", "classes": [...], "positions": [...]}`` as
        ``docs/cloud-bridge.md`` shows."""
        with self._lock:
            self._groups = [dict(g) for g in groups]
            return len(self._groups)

    def groups_page(self, offset: int, size: int) -> tuple[list[dict[str, Any]], bool]:
        """Groups without their positions (those have their own API), like getsimplegroups."""
        with self._lock:
            page = [
                {k: v for k, v in g.items() if k != "positions"}
                for g in self._groups[offset : offset + size]
            ]
            return page, len(self._groups) > offset + size

    def positions_page(
        self, group_id: int, cursor: int, size: int
    ) -> tuple[list[dict[str, Any]], int | None] | None:
        """A page of the group's check-in positions and the next cursor; None: no such group."""
        with self._lock:
            for g in self._groups:
                if g.get("group_id") == group_id:
                    positions = list(g.get("positions", []))
                    more = len(positions) > cursor + size
                    return positions[cursor : cursor + size], (cursor + size if more else None)
        return None

    # -- meeting rooms ------------------------------------------------------------------------

    def set_rooms(self, rooms: list[dict[str, Any]]) -> int:
        """Replace the rooms: ``{"room_id", "room_name", "room_capacity", "room_location",
        "room_status"}`` (status 1 open, 0 closed)."""
        with self._lock:
            self._rooms = sorted((dict(r) for r in rooms), key=lambda r: str(r["room_id"]))
            return len(self._rooms)

    def rooms_page(self, offset: int, size: int) -> tuple[list[dict[str, Any]], int | None]:
        with self._lock:
            more = len(self._rooms) > offset + size
            return [dict(r) for r in self._rooms[offset : offset + size]], (
                offset + size if more else None
            )

    def put_booking(
        self,
        booking_id: str,
        room_id: str,
        start_ms: int,
        end_ms: int,
        *,
        subject: str = "",
        organizer: str = "",
        attendees: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create or change a confirmed booking; its ``modified_time`` becomes now."""
        if end_ms <= start_ms:
            raise ValueError("a booking must end after it starts")
        with self._lock:
            booking = {
                "booking_id": booking_id,
                "room_id": room_id,
                "start_time": start_ms,
                "end_time": end_ms,
                "subject": subject,
                "organizer_userid": organizer,
                "attendee_userids": list(attendees or []),
                "status": CONFIRMED,
                "modified_time": self._stamp(),
            }
            self._bookings[booking_id] = booking
            return dict(booking)

    def booking(self, booking_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._bookings.get(booking_id)
            return None if found is None else dict(found)

    def cancel_booking(self, booking_id: str) -> bool:
        """Cancel a booking: it stays listed as ``cancelled`` with a new ``modified_time``, so
        an incremental reader learns the slot is free."""
        with self._lock:
            booking = self._bookings.get(booking_id)
            if booking is None:
                return False
            booking.update(status=CANCELLED, modified_time=self._stamp())
            return True

    def bookings_page(
        self, modified_since: int, cursor: str | None, size: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Bookings modified at or after ``modified_since``, oldest change first.

        The keyset cursor is ``"{modified_time}:{booking_id}"``; ordering by modification time
        means a booking changed while a reader pages moves behind the cursor and is still read.
        """
        after = parse_cursor(cursor)
        with self._lock:
            rows = sorted(
                (
                    b
                    for b in self._bookings.values()
                    if b["modified_time"] >= modified_since
                    and (after is None or (b["modified_time"], b["booking_id"]) > after)
                ),
                key=lambda b: (b["modified_time"], b["booking_id"]),
            )
            page = [dict(b) for b in rows[:size]]
        more = len(rows) > size
        last = page[-1] if page else None
        return page, (f"{last['modified_time']}:{last['booking_id']}" if more and last else None)

    # -- leave quotas -------------------------------------------------------------------------

    def set_quotas(self, quotas: list[dict[str, Any]]) -> int:
        """Replace the leave quotas: ``{"userid", "leave_code", "unit": "day"|"hour",
        "quota", "used"}`` in days or hours."""
        with self._lock:
            self._quotas = [dict(q) for q in quotas]
            return len(self._quotas)

    def quotas_page(
        self, userids: list[str], leave_code: str | None, offset: int, size: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Quotas of ``userids`` as DingTalk answers them: amounts times 100."""
        wanted = set(userids)
        with self._lock:
            hits = [
                q
                for q in sorted(self._quotas, key=lambda q: (q["userid"], q["leave_code"]))
                if q["userid"] in wanted and (leave_code is None or q["leave_code"] == leave_code)
            ]
        page = []
        for q in hits[offset : offset + size]:
            hour = q.get("unit") == "hour"
            quota, used = round(q["quota"] * 100), round(q["used"] * 100)
            page.append(
                {
                    "userid": q["userid"],
                    "leave_code": q["leave_code"],
                    "quota_cycle": "this_year",
                    "quota_num_per_day": 0 if hour else quota,
                    "used_num_per_day": 0 if hour else used,
                    "quota_num_per_hour": quota if hour else 0,
                    "used_num_per_hour": used if hour else 0,
                }
            )
        return page, len(hits) > offset + size

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "groups": len(self._groups),
                "rooms": len(self._rooms),
                "bookings": len(self._bookings),
                "quotas": len(self._quotas),
                "calls": dict(self.calls),
            }


def parse_cursor(cursor: str | None) -> tuple[int, str] | None:
    """``"{ms}:{id}"`` -> ``(ms, id)``; None for no cursor. Raises ValueError when malformed."""
    if not cursor:
        return None
    ms, sep, rest = cursor.partition(":")
    if not sep or not ms.isdigit():
        raise ValueError(f"cursor {cursor!r} is not one this API gave out")
    return int(ms), rest
