"""Admin accounts over the API (the same checks and audit as ``tack accounts``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from gateway.admin import accounts as acc
from gateway.admin.auth import Principal, context, requires
from gateway.admin.permissions import Permission, Role

router = APIRouter(prefix="/accounts", tags=["accounts"])


class NewAccount(BaseModel):
    username: str = Field(min_length=1, max_length=32)
    role: Role
    password: str = Field(min_length=1, max_length=1024)


class AccountChange(BaseModel):
    role: Role | None = None
    disabled: bool | None = None


@router.get("", dependencies=[requires(Permission.ACCOUNTS_READ)])
async def list_accounts(request: Request) -> dict[str, object]:
    items = [a.as_dict() for a in await acc.list_accounts(context(request).db)]
    return {"items": items, "total": len(items)}


@router.post("", status_code=201)
async def create(
    body: NewAccount,
    request: Request,
    me: Annotated[Principal, requires(Permission.ACCOUNTS_WRITE)],
) -> dict[str, object]:
    ctx = context(request)
    account = await acc.add_account(
        ctx.db, ctx.audit, me.actor, body.username, body.role, body.password
    )
    return account.as_dict()


@router.patch("/{username}")
async def change(
    username: str,
    body: AccountChange,
    request: Request,
    me: Annotated[Principal, requires(Permission.ACCOUNTS_WRITE)],
) -> dict[str, object]:
    """Change the role and/or disable (or enable) the account, both or neither; its sessions
    end."""
    ctx = context(request)
    await acc.change_account(
        ctx.db, ctx.audit, me.actor, username, role=body.role, disabled=body.disabled
    )
    found = await acc.get_account(ctx.db, username)
    if found is None:
        raise acc.AccountNotFoundError(f"no account {username!r}; see GET /api/accounts")
    return found.as_dict()
