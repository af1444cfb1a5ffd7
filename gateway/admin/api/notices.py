"""Must-read notices: send to devices, list what is still unread (gateway/notices/)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from gateway.admin.auth import Principal, context, requires
from gateway.admin.errors import ApiError
from gateway.admin.permissions import Permission
from gateway.notices.service import NoticeError, send_notice
from gateway.notices.store import unread

router = APIRouter(prefix="/notices", tags=["notices"])


class NewNotice(BaseModel):
    title: str = ""
    text: str
    sender: str | None = None
    to: list[str] = Field(default_factory=list, description="Device ids.")
    all_terminals: bool = False
    all_panels: bool = False


@router.post("", status_code=201)
async def send(
    body: NewNotice,
    request: Request,
    me: Annotated[Principal, requires(Permission.NOTICES_WRITE)],
) -> dict[str, object]:
    """A running gateway publishes it to the devices at once (or within registry.refresh_s)."""
    ctx = context(request)
    try:
        notice, devices = await send_notice(
            ctx.db,
            title=body.title,
            text=body.text,
            sender=body.sender,
            to=body.to,
            all_terminals=body.all_terminals,
            all_panels=body.all_panels,
        )
    except NoticeError as exc:
        raise ApiError(422, "invalid_notice", exc.message) from exc
    await ctx.audit.append(me.actor, "notice.send", notice.notice_id, {"devices": len(devices)})
    await ctx.changed("notices")
    return {"notice_id": notice.notice_id, "devices": devices}


@router.get("/unread", dependencies=[requires(Permission.NOTICES_READ)])
async def list_unread(request: Request) -> dict[str, object]:
    items = [
        {
            "notice_id": u.notice_id,
            "title": u.title,
            "device_id": u.device_id,
            "created_ts_ms": u.created_ts_ms,
            "sent_ts_ms": u.sent_ts_ms,
        }
        for u in await unread(context(request).db)
    ]
    return {"items": items, "total": len(items)}
