"""The audit log: newest entries, chain verification, export with hashes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from gateway.admin.auth import context, requires
from gateway.admin.permissions import Permission
from gateway.audit.chain import export_csv, export_jsonl

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", dependencies=[requires(Permission.AUDIT_READ)])
async def list_entries(
    request: Request,
    actor: Annotated[str, Query(max_length=128)] = "",
    action: Annotated[str, Query(max_length=64, description="e.g. device.revoke")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, object]:
    entries = await context(request).audit.entries(
        actor=actor or None, action=action or None, limit=limit, newest_first=True
    )
    return {"items": [e.as_dict() for e in entries], "total": len(entries)}


@router.get("/verify", dependencies=[requires(Permission.AUDIT_READ)])
async def verify(request: Request) -> dict[str, object]:
    """``ok`` false names each entry that was changed or removed (like ``tack audit verify``)."""
    result = await context(request).audit.verify()
    return {
        "ok": result.ok,
        "checked": result.checked,
        "problems": [{"entry_id": p.entry_id, "what": p.what} for p in result.problems],
    }


@router.get("/export", dependencies=[requires(Permission.AUDIT_READ)])
async def export(
    request: Request, format: Annotated[str, Query(pattern="^(jsonl|csv)$")] = "jsonl"
) -> Response:
    entries = await context(request).audit.entries()
    if format == "csv":
        return Response(
            export_csv(entries),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="tack-audit.csv"'},
        )
    return Response(
        export_jsonl(entries),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="tack-audit.jsonl"'},
    )
