"""Logging in and out over the API, who am I, and the public liveness check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from gateway.admin.auth import (
    COOKIE,
    Principal,
    bearer_token,
    client_address,
    context,
    login,
    public,
    requires,
)
from gateway.admin.permissions import Permission

router = APIRouter(tags=["session"])


class LoginBody(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


@router.get("/health", dependencies=[public()])
async def health() -> dict[str, str]:
    """Liveness only: answers while the admin app serves. No data, no login."""
    return {"status": "ok"}


@router.post("/login", dependencies=[public()])
async def api_login(body: LoginBody, request: Request) -> dict[str, object]:
    """Send the token back as ``Authorization: Bearer <token>``. Five failed logins for a name
    or from an address within five minutes answer 429 with Retry-After."""
    ctx = context(request)
    session = await login(ctx, body.username, body.password, client_address(request))
    return {
        "token": session.token,
        "csrf_token": session.csrf_token,
        "expires_ts_ms": session.expires_ts_ms,
    }


@router.post("/logout")
async def api_logout(
    request: Request,
    response: Response,
    me: Annotated[Principal, requires(Permission.SESSION)],
) -> dict[str, str]:
    """Ends the session the call was made with: the bearer token's, else the cookie's (the
    same choice login checks made: another ``Authorization`` scheme is not a token)."""
    ctx = context(request)
    if me.via_cookie:
        await ctx.sessions.end(request.cookies.get(COOKIE, ""))
        response.delete_cookie(COOKIE, path="/")
    else:
        await ctx.sessions.end(bearer_token(request) or "")
    await ctx.audit.append(me.actor, "logout", me.name)
    return {"status": "logged out"}


@router.get("/me")
async def whoami(me: Annotated[Principal, requires(Permission.SESSION)]) -> dict[str, object]:
    return {
        "username": me.name,
        "role": str(me.role),
        "permissions": sorted(str(p) for p in me.permissions),
    }
