"""Backups of the store (gateway/security/backup.py): list them, create one now."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Request

from gateway.admin.auth import Principal, context, requires
from gateway.admin.permissions import Permission

if TYPE_CHECKING:
    from gateway.security.backup import BackupInfo

router = APIRouter(prefix="/backups", tags=["backups"])


def _info(b: BackupInfo) -> dict[str, object]:
    return {
        "name": b.path.name,
        "created_ts_ms": b.created_ms,
        "size": b.size,
        "sha256": b.sha256,
    }


@router.get("", dependencies=[requires(Permission.BACKUPS_READ)])
async def list_backups(request: Request) -> dict[str, object]:
    from gateway.security.backup import list_backups as listed

    items = [_info(b) for b in await asyncio.to_thread(listed, context(request).settings)]
    return {"items": items, "total": len(items)}


@router.post("", status_code=201)
async def create_backup(
    request: Request, me: Annotated[Principal, requires(Permission.BACKUPS_WRITE)]
) -> dict[str, object]:
    """An online backup, encrypted, with its manifest; audited as ``backup.create``."""
    from gateway.security.backup import create_backup as create

    return _info(await create(context(request).settings, actor=me.actor))
