"""Meeting rooms with today's bookings (site time), as the panels show them."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request

from gateway.admin.auth import context, requires
from gateway.admin.permissions import Permission
from gateway.admin.queries import day_bounds
from gateway.rooms.store import views_between
from gateway.store.rooms import load_rooms

router = APIRouter(prefix="/rooms", tags=["rooms"])


async def rooms_today(request: Request) -> list[dict[str, object]]:
    ctx = context(request)
    zone = ZoneInfo(ctx.settings.attendance.timezone)
    start, end = day_bounds(zone, ctx.clock())
    bookings = await views_between(ctx.db, None, start, end)
    out = []
    for room in await load_rooms(ctx.db):
        mine = [b for b in bookings if b.room_id == room.room_id]
        out.append(
            {
                "room_id": room.room_id,
                "name": room.name,
                "capacity": room.capacity,
                "location": room.location,
                "active": room.active,
                "bookings": [
                    {
                        "booking_id": b.booking_id,
                        "start_ms": b.start_ms,
                        "end_ms": b.end_ms,
                        "subject": b.subject,
                        "organizer": b.organizer_name or b.organizer,
                        "status": b.status,
                        "checked_in": b.checked_in_ms is not None,
                        "released": b.released_ms is not None,
                    }
                    for b in mine
                ],
            }
        )
    return out


@router.get("", dependencies=[requires(Permission.ROOMS_READ)])
async def list_rooms(request: Request) -> dict[str, object]:
    items = await rooms_today(request)
    return {"items": items, "total": len(items)}
