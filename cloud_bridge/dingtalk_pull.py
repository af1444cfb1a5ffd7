"""Reading the DingTalk-style answers for attendance groups, check-in positions, meeting rooms,
bookings and leave quotas into the gateway's own types.

Pure functions, so the adapter's HTTP side stays short and each answer's oddities (amounts
times 100, times as ``"HH:MM"``, radius called ``offset``) are dealt with in one place. An entry
that cannot be read is skipped and counted by the caller, never guessed at.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from gateway.attendance.balances import DAY, HOUR, LeaveBalance
from gateway.attendance.policy import Shift
from gateway.store.rooms import CANCELLED, CONFIRMED, Booking, Room
from gateway.verify.geo.fence import Circle, Geofence, GeofenceError

log = logging.getLogger(__name__)

GROUPS_PATH = "/topapi/attendance/getsimplegroups"
POSITIONS_PATH = "/topapi/attendance/group/positions/query"
ROOMS_PATH = "/topapi/meetingroom/list"
BOOKINGS_PATH = "/topapi/meetingroom/booking/list"
QUOTA_PATH = "/topapi/attendance/vacation/quota/list"
GROUPS_PAGE_SIZE = 10  # getsimplegroups' maximum page
POSITIONS_PAGE_SIZE = 100
ROOMS_PAGE_SIZE = 100
BOOKINGS_PAGE_SIZE = 100
QUOTA_USERS_PER_CALL = 50  # vacation/quota/list takes at most 50 userids
QUOTA_PAGE_SIZE = 50


def shifts_of_group(group: dict[str, Any]) -> list[tuple[str, Shift]]:
    """One shift per class of the group and department it applies to; ids
    ``"{group_id}:{class_id}"`` (plus ``":{dept}"`` when the group names several)."""
    depts = [str(d) for d in group.get("dept_name_list") or [] if d] or [""]
    days = frozenset(int(d) for d in group.get("work_day_list") or [] if 1 <= int(d) <= 7)
    out: list[tuple[str, Shift]] = []
    for cls in group.get("classes") or []:
        try:
            start = dt.time.fromisoformat(str(cls["on_duty"]))
            end = dt.time.fromisoformat(str(cls["off_duty"]))
            base_id = f"{group['group_id']}:{cls['class_id']}"
            name = str(cls.get("class_name") or base_id)[:32]
            grace_in = int(cls.get("permit_late_minutes", 5))
            grace_out = int(cls.get("permit_early_minutes", 0))
            opens = int(cls.get("on_duty_begin_minutes", 240))
            closes = int(cls.get("off_duty_end_minutes", 480))
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("attendance group %s: a class cannot be read (%s); skipped", group, exc)
            continue
        if not days:
            log.warning("attendance group %s has no work days; its shifts are skipped", group)
            continue
        for dept in depts:
            shift_id = base_id if len(depts) == 1 else f"{base_id}:{dept}"
            out.append(
                (
                    shift_id,
                    Shift(name, start, end, dept, days, grace_in, grace_out, opens, closes),
                )
            )
    return out


def fence_of_position(item: object) -> Geofence | None:
    """A check-in position (centre and ``offset``, its radius in metres) as a circle named by
    its title, or by its id when it has none."""
    if not isinstance(item, dict):
        return None
    name = str(item.get("title") or item.get("position_id") or "")[:64]
    try:
        return Circle(
            name, float(item["latitude"]), float(item["longitude"]), float(item["offset"])
        )
    except (KeyError, TypeError, ValueError, GeofenceError) as exc:
        log.warning("check-in position %r cannot be used as a geofence: %s", name, exc)
        return None


def room_of(item: object) -> Room | None:
    if not isinstance(item, dict) or not item.get("room_id"):
        return None
    capacity = item.get("room_capacity")
    return Room(
        str(item["room_id"]),
        str(item.get("room_name") or item["room_id"]),
        capacity if isinstance(capacity, int) and capacity >= 0 else 0,
        str(item.get("room_location") or ""),
        item.get("room_status", 1) == 1,
    )


def booking_of(item: object) -> Booking | None:
    if not isinstance(item, dict) or not item.get("booking_id") or not item.get("room_id"):
        return None
    start, end, modified = item.get("start_time"), item.get("end_time"), item.get("modified_time")
    if not (isinstance(start, int) and isinstance(end, int) and isinstance(modified, int)):
        return None
    if end <= start:
        return None
    status = CANCELLED if item.get("status") == CANCELLED else CONFIRMED
    attendees = item.get("attendee_userids")
    return Booking(
        str(item["booking_id"]),
        str(item["room_id"]),
        start,
        end,
        str(item.get("subject") or ""),
        str(item.get("organizer_userid") or ""),
        tuple(str(a) for a in attendees) if isinstance(attendees, list) else (),
        status,
        modified,
    )


def balance_of(item: object) -> LeaveBalance | None:
    """DingTalk gives amounts times 100, in days or in hours (whichever quota is set)."""
    if not isinstance(item, dict) or not item.get("userid") or not item.get("leave_code"):
        return None
    by_day = (item.get("quota_num_per_day"), item.get("used_num_per_day"))
    by_hour = (item.get("quota_num_per_hour"), item.get("used_num_per_hour"))
    for (quota, used), unit in ((by_day, DAY), (by_hour, HOUR)):
        if isinstance(quota, int) and quota:
            spent = used if isinstance(used, int) else 0
            return LeaveBalance(
                str(item["userid"]), str(item["leave_code"]), (quota - spent) / 100, unit
            )
    return None
