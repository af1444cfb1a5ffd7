"""Who is calling, and may they: the one dependency every route declares.

Each route lists ``Requires(permission)`` in its dependencies (``requires(...)`` below), or
``PUBLIC`` for the few that need no login. The route-table test reads that declaration back
with :func:`declared_permission`; a route that declares neither fails it.

Credentials, in order: ``Authorization: Bearer <token>`` (a token from ``POST /api/login``, or
``admin.metrics_token`` for ``/metrics`` only), then the UI's session cookie. A call that
changes something with the cookie must also carry the session's CSRF token (form field
``csrf_token`` or header ``X-CSRF-Token``); bearer calls need none, since a browser never
adds that header by itself.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.routing import APIRoute

from gateway.admin.context import AdminContext
from gateway.admin.errors import ApiError
from gateway.admin.permissions import ROLE_PERMISSIONS, Permission, Role
from gateway.admin.sessions import NewSession

COOKIE = "tack_session"
# What a failed login's audit entry names when what was typed cannot be a username.
NOT_A_USERNAME = "(not a valid username)"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: Role | None  # None for the metrics token
    permissions: frozenset[Permission]
    csrf_token: str = ""
    via_cookie: bool = False

    @property
    def actor(self) -> str:
        """How the audit log names this caller."""
        return f"web:{self.name}"

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


def context(request: Request) -> AdminContext:
    ctx: AdminContext = request.app.state.admin
    return ctx


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; ``None`` for no header or another scheme."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


async def identify(request: Request) -> Principal | None:
    ctx = context(request)
    token = bearer_token(request)
    metrics_token = ctx.settings.admin.metrics_token
    if (
        token is not None
        and metrics_token
        and request.url.path == "/metrics"
        and hmac.compare_digest(token.encode(), metrics_token.encode())
    ):
        return Principal("metrics-token", None, frozenset({Permission.METRICS_READ}))
    via_cookie = token is None
    if token is None:
        token = request.cookies.get(COOKIE)
    if not token:
        return None
    session = await ctx.sessions.lookup(token)
    if session is None:
        return None
    return Principal(
        session.username,
        session.role,
        ROLE_PERMISSIONS[session.role],
        session.csrf_token,
        via_cookie,
    )


async def _csrf_ok(request: Request, principal: Principal) -> bool:
    sent = request.headers.get("x-csrf-token")
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        field = form.get("csrf_token")
        sent = field if isinstance(field, str) else None
    return sent is not None and hmac.compare_digest(sent.encode(), principal.csrf_token.encode())


class Requires:
    """The permission a route needs; ``None`` makes the route public."""

    def __init__(self, permission: Permission | None) -> None:
        self.permission = permission

    def __repr__(self) -> str:
        return f"Requires({self.permission})"

    async def __call__(self, request: Request) -> Principal | None:
        if self.permission is None:
            return None
        principal = await identify(request)
        if principal is None:
            raise ApiError(
                401,
                "not_authenticated",
                "log in first: the web UI at /login, or POST /api/login and send the token as "
                "'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.can(self.permission):
            raise ApiError(
                403,
                "forbidden",
                f"your role ({principal.role}) does not have the permission "
                f"'{self.permission}'; ask an admin (docs/admin.md lists who may do what)",
            )
        if (
            principal.via_cookie
            and request.method not in _SAFE_METHODS
            and not await _csrf_ok(request, principal)
        ):
            raise ApiError(
                403,
                "csrf_failed",
                "the form's security token is missing or old; reload the page and try again "
                "(API clients: send the X-CSRF-Token header, or use a bearer token)",
            )
        request.state.principal = principal
        return principal


PUBLIC = Requires(None)


def requires(permission: Permission) -> Any:
    """``dependencies=[requires(Permission.X)]``, or as a parameter to get the caller."""
    return Depends(Requires(permission))


def public() -> Any:
    return Depends(PUBLIC)


def declared_permission(route: APIRoute) -> Requires | None:
    """The ``Requires`` a route declared (its first), or ``None`` when it declared none."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop(0)
        if isinstance(dep.call, Requires):
            return dep.call
        stack.extend(dep.dependencies)
    return None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def login(ctx: AdminContext, username: str, password: str, address: str) -> NewSession:
    """Check the password under the rate limit and start a session; :class:`ApiError` (401,
    429) otherwise. Failures are audited as ``login.fail`` with the username and why, never the
    password (nor what was typed as the username unless it could be one: a password typed in
    the wrong field is the usual other thing); successes as ``login.ok``.

    The attempt counts as a failure before the password is checked, and is taken back when it
    was right: so logins sent all at once cannot each pass the limit before any has failed. At
    most ``ctx.verify_slots`` passwords are checked at a time; the others wait their turn."""
    from gateway.admin.accounts import USERNAME_PATTERN, authenticate

    username = username.strip().lower()[:64]
    wait = ctx.limiter.attempt(username, address)
    if wait:
        raise ApiError(
            429,
            "rate_limited",
            f"too many failed logins for this account or from this address; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    async with ctx.verify_slots:
        why = await authenticate(ctx.db, username, password)
    if why is not None:
        target = username if USERNAME_PATTERN.fullmatch(username) else NOT_A_USERNAME
        await ctx.audit.append("gateway", "login.fail", target, {"reason": why})
        raise ApiError(
            401,
            "login_failed",
            "wrong username or password, or the account is disabled",
        )
    ctx.limiter.succeeded(username, address)
    session = await ctx.sessions.create(username)
    await ctx.audit.append(f"web:{username}", "login.ok", username)
    return session
