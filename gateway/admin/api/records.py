"""Records: query with filters and paging, export as CSV, and a punch's camera frame (a face
image: only for roles with ``faces.read``)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response, StreamingResponse

from gateway.admin import queries
from gateway.admin.auth import Principal, context, requires
from gateway.admin.errors import ApiError
from gateway.admin.permissions import Permission
from gateway.store.frames import load_frame

router = APIRouter(prefix="/records", tags=["records"])


def _ms(value: str, name: str) -> int | None:
    """An ISO date or date-time (site time when it names no zone) as UTC milliseconds."""
    if not value:
        return None
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ApiError(
            422,
            "invalid_input",
            f"{name}: {value!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM",
        ) from None
    return int(when.timestamp() * 1000)


def record_filter(
    request: Request,
    device: Annotated[str, Query(max_length=64, description="Only this device.")] = "",
    person: Annotated[str, Query(max_length=64, description="Only this person id.")] = "",
    kind: Annotated[str, Query(pattern="^[a-z_]{0,16}$", description="punch, checkin...")] = "",
    status: Annotated[str, Query(pattern="^(|accepted|rejected)$")] = "",
    sync: Annotated[str, Query(pattern="^(|pending|synced|failed|local)$")] = "",
    since: Annotated[str, Query(max_length=32, description="From this date (site time).")] = "",
    until: Annotated[str, Query(max_length=32, description="Before this date (site time).")] = "",
) -> queries.RecordFilter:
    zone = ZoneInfo(context(request).settings.attendance.timezone)
    since_ms = _ms(_local(since, zone), "since")
    until_ms = _ms(_local(until, zone), "until")
    if since_ms is not None and until_ms is not None and until_ms <= since_ms:
        raise ApiError(422, "invalid_input", "until must be after since")
    return queries.RecordFilter(device, person, kind, status, sync, since_ms, until_ms)


def _local(value: str, zone: ZoneInfo) -> str:
    if not value:
        return ""
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return value  # _ms names the problem
    return (when if when.tzinfo else when.replace(tzinfo=zone)).isoformat()


Filter = Annotated[queries.RecordFilter, Depends(record_filter)]


@router.get("", dependencies=[requires(Permission.RECORDS_READ)])
async def list_records(
    request: Request,
    flt: Filter,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, object]:
    """Newest first. ``has_frame`` says a camera frame came with the punch; reading it needs
    ``faces.read`` (GET /api/records/{id}/frame)."""
    items, total = await queries.records(context(request).db, flt, limit, offset)
    return {"items": items, "total": total, "limit": limit, "offset": offset}


CSV_HEADER = (
    "id",
    "device_id",
    "seq",
    "msg_id",
    "kind",
    "device_time",
    "received_time",
    "person_id",
    "person_name",
    "status",
    "reason",
    "sync_state",
    "sync_error",
)


def _iso(ms: int | None, zone: ZoneInfo) -> str:
    if ms is None:
        return ""
    return dt.datetime.fromtimestamp(ms / 1000, zone).isoformat(timespec="seconds")


_FORMULA_START = ("=", "+", "-", "@")


def csv_cell(value: object) -> object:
    """A text cell a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@`` first,
    after any spaces) gets a leading apostrophe, which shows it as the text it is: a person's
    name or a sync error comes from outside and must not become a formula in someone's Excel."""
    if isinstance(value, str) and value.lstrip().startswith(_FORMULA_START):
        return "'" + value
    return value


async def csv_rows(request: Request, flt: queries.RecordFilter) -> AsyncIterator[str]:
    ctx = context(request)
    zone = ZoneInfo(ctx.settings.attendance.timezone)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    async for r in queries.iter_records(ctx.db, flt):
        row = [
            r["id"],
            r["device_id"],
            r["seq"],
            r["msg_id"],
            r["kind"],
            _iso(r["device_ts_ms"], zone),
            _iso(r["received_ts_ms"], zone),
            r["person_id"] or "",
            r["person_name"] or "",
            r["status"],
            r["reason"],
            r["sync_state"],
            r["sync_error"] or "",
        ]
        writer.writerow([csv_cell(v) for v in row])
        if out.tell() > 64_000:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


@router.get("/export.csv", dependencies=[requires(Permission.RECORDS_EXPORT)])
async def export_csv(request: Request, flt: Filter) -> StreamingResponse:
    """Every matching record, oldest first, times in the site's zone. No card numbers."""
    ctx = context(request)
    await ctx.audit.append(
        request.state.principal.actor,
        "records.export",
        "",
        {"device": flt.device, "person": flt.person, "since_ms": flt.since_ms},
    )
    return StreamingResponse(
        csv_rows(request, flt),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="tack-records.csv"'},
    )


@router.get("/{record_id}/frame")
async def record_frame(
    record_id: int,
    request: Request,
    me: Annotated[Principal, requires(Permission.FACES_READ)],
) -> Response:
    """The camera frame of a punch (a face image): JPEG, never cached; audited ``face.view``."""
    from gateway.security.keyring import KeyringError, keyring_for

    ctx = context(request)
    key = await queries.record_frame_key(ctx.db, record_id)
    try:
        ring = keyring_for(ctx.settings, create=False)
    except KeyringError:
        ring = None  # frames stored in the clear read without one; a sealed one says so
    frame = await load_frame(ctx.db, *key, keyring=ring) if key else None
    if frame is None:
        raise ApiError(404, "no_frame", f"record {record_id} has no camera frame")
    # Who looked at whose face is itself worth knowing.
    await ctx.audit.append(me.actor, "face.view", f"record:{record_id}")
    return Response(
        frame.data,
        media_type="image/jpeg",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )
