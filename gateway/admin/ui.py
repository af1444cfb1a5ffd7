"""The web UI: server-rendered pages over the same queries and operations as the API.

Forms post with the session's CSRF token; the session cookie is HttpOnly and SameSite=Strict.
A page asked for without a session answers 401 with the login form (which comes back to the
page); one the role may not see answers 403. Theme and language are cookies set by ``/prefs``.
"""

from __future__ import annotations

import datetime as dt
import secrets
import urllib.parse
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from gateway.admin import device_ops, queries
from gateway.admin.api.records import record_filter
from gateway.admin.api.rooms import rooms_today
from gateway.admin.auth import (
    COOKIE,
    Principal,
    client_address,
    context,
    login,
    public,
    requires,
)
from gateway.admin.errors import ApiError
from gateway.admin.i18n import LANGUAGES, Translator, choose
from gateway.admin.permissions import Permission

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).with_name("templates"))

LANG_COOKIE = "tack_lang"
THEME_COOKIE = "tack_theme"
LOGIN_CSRF_COOKIE = "tack_login_csrf"
THEMES = ("light", "dark", "auto")
NAV = (
    ("/", "dashboard", Permission.DASHBOARD_READ),
    ("/devices", "devices", Permission.DEVICES_READ),
    ("/records", "records", Permission.RECORDS_READ),
    ("/rooms", "rooms", Permission.ROOMS_READ),
    ("/audit", "audit", Permission.AUDIT_READ),
)
_YEAR = 365 * 24 * 3600


def _safe_next(value: str) -> str:
    """Only a path on this site: never an open redirect to another one."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def render(
    request: Request,
    name: str,
    status: int = 200,
    section: str = "",
    **values: Any,
) -> HTMLResponse:
    ctx = context(request)
    lang = choose(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    theme = request.cookies.get(THEME_COOKIE, "auto")
    zone = ZoneInfo(ctx.settings.attendance.timezone)

    def when(ms: int | None) -> str:
        if ms is None:
            return ""
        return dt.datetime.fromtimestamp(ms / 1000, zone).strftime("%Y-%m-%d %H:%M:%S")

    def hm(ms: int) -> str:
        return dt.datetime.fromtimestamp(ms / 1000, zone).strftime("%H:%M")

    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = templates.TemplateResponse(
        request,
        name,
        {
            "t": Translator(lang),
            "lang": lang,
            "theme": theme if theme in THEMES else "auto",
            "me": getattr(request.state, "principal", None),
            "nav": NAV,
            "section": section,
            "perm": Permission,
            "here": here,
            "when": when,
            "hm": hm,
            **values,
        },
        status_code=status,
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Language"] = "zh-Hans" if lang == "zh" else "en"
    return response


def login_page(
    request: Request, status: int, message: str = "", next_url: str = "/", username: str = ""
) -> HTMLResponse:
    token = secrets.token_urlsafe(16)
    response = render(
        request,
        "login.html",
        status,
        message=message,
        next=_safe_next(next_url),
        login_csrf=token,
        username=username,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login", max_age=3600
    )
    return response


def error_page(request: Request, err: ApiError) -> Response:
    """How the UI shows an :class:`ApiError`: the login form for 401, a page otherwise."""
    t = Translator(choose(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")))
    if err.status == 401:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return login_page(
            request, 401, t("login.expired"), here if request.method == "GET" else "/"
        )
    message = t("error.forbidden") if err.code == "forbidden" else err.message
    return render(request, "error.html", err.status, message=message)


@router.get("/login", dependencies=[public()])
async def get_login(
    request: Request, next: Annotated[str, Query(max_length=500)] = "/"
) -> HTMLResponse:
    return login_page(request, 200, next_url=next)


@router.post("/login", dependencies=[public()])
async def post_login(
    request: Request,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    t = Translator(choose(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected, csrf_token):
        return login_page(request, 403, t("login.csrf"), next, username)
    ctx = context(request)
    try:
        session = await login(ctx, username, password, client_address(request))
    except ApiError as err:
        if err.status == 429:
            page = login_page(
                request, 429, t("login.limited", seconds=err.headers["Retry-After"]), next, username
            )
            page.headers["Retry-After"] = err.headers["Retry-After"]
            return page
        return login_page(request, err.status, t("login.failed"), next, username)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        session.token,
        max_age=ctx.settings.admin.session_lifetime_min * 60,
        httponly=True,
        samesite="strict",
        secure=ctx.settings.admin.cookie_secure,
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def post_logout(
    request: Request, me: Annotated[Principal, requires(Permission.SESSION)]
) -> Response:
    ctx = context(request)
    await ctx.sessions.end(request.cookies.get(COOKIE, ""))
    await ctx.audit.append(me.actor, "logout", me.name)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/prefs", dependencies=[public()])
async def prefs(
    theme: Annotated[str, Query(pattern="^(|light|dark|auto)$")] = "",
    lang: Annotated[str, Query(pattern="^(|en|zh)$")] = "",
    next: Annotated[str, Query(max_length=500)] = "/",
) -> Response:
    """Remember the theme and language in cookies (no account needed: the login page has the
    switch too)."""
    response = RedirectResponse(_safe_next(next), status_code=303)
    if theme:
        response.set_cookie(THEME_COOKIE, theme, max_age=_YEAR, samesite="lax", path="/")
    if lang in LANGUAGES:
        response.set_cookie(LANG_COOKIE, lang, max_age=_YEAR, samesite="lax", path="/")
    return response


@router.get("/", dependencies=[requires(Permission.DASHBOARD_READ)])
async def dashboard(request: Request) -> HTMLResponse:
    ctx = context(request)
    t = Translator(choose(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language")))
    d = await queries.dashboard(ctx.db, ZoneInfo(ctx.settings.attendance.timezone), ctx.clock())
    alerts: list[tuple[str, str]] = [
        ("", t("dash.alert_offline", device=device)) for device in d.offline
    ]
    if d.dead_letters:
        alerts.append(("bad", t("dash.alert_dead", n=d.dead_letters)))
    if d.bridge_lag_s > 300:
        alerts.append(("", t("dash.alert_lag", duration=t.duration(d.bridge_lag_s))))
    return render(request, "dashboard.html", section="dashboard", d=d, alerts=alerts)


@router.get("/devices", dependencies=[requires(Permission.DEVICES_READ)])
async def devices_page(
    request: Request,
    q: Annotated[str, Query(max_length=64)] = "",
    state: Annotated[str, Query(pattern="^(|online|offline|revoked)$")] = "",
) -> HTMLResponse:
    views = await queries.devices(context(request).db, q, state)
    return render(request, "devices.html", section="devices", devices=views, q=q, state=state)


async def _device_or_404(request: Request, device_id: str) -> queries.DeviceView:
    view = await queries.device(context(request).db, device_id)
    if view is None:
        raise ApiError(404, "no_such_device", f"no device {device_id!r}")
    return view


@router.get("/devices/{device_id}", dependencies=[requires(Permission.DEVICES_READ)])
async def device_page(
    request: Request, device_id: str, done: Annotated[str, Query(max_length=16)] = ""
) -> HTMLResponse:
    view = await _device_or_404(request, device_id)
    recent, _ = await queries.records(
        context(request).db, queries.RecordFilter(device=device_id), 20, 0
    )
    return render(
        request, "device.html", section="devices", v=view, records=recent, done=done == "revoked"
    )


@router.get("/devices/{device_id}/revoke", dependencies=[requires(Permission.DEVICES_WRITE)])
async def confirm_revoke(request: Request, device_id: str) -> HTMLResponse:
    view = await _device_or_404(request, device_id)
    return render(request, "revoke.html", section="devices", device_id=view.device_id)


@router.post("/devices/{device_id}/revoke")
async def revoke(
    request: Request,
    device_id: str,
    me: Annotated[Principal, requires(Permission.DEVICES_WRITE)],
) -> Response:
    await device_ops.revoke_device(context(request), me.actor, device_id)
    target = f"/devices/{urllib.parse.quote(device_id)}?done=revoked"
    return RedirectResponse(target, status_code=303)


@router.get("/records", dependencies=[requires(Permission.RECORDS_READ)])
async def records_page(
    request: Request,
    device: Annotated[str, Query(max_length=64)] = "",
    person: Annotated[str, Query(max_length=64)] = "",
    kind: Annotated[str, Query(pattern="^[a-z_]{0,16}$")] = "",
    sync: Annotated[str, Query(pattern="^(|pending|synced|failed|local)$")] = "",
    since: Annotated[str, Query(max_length=32)] = "",
    until: Annotated[str, Query(max_length=32)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    limit = 50
    flt = record_filter(request, device, person, kind, "", sync, since, until)
    rows, total = await queries.records(context(request).db, flt, limit, offset)
    form = {
        "device": device,
        "person": person,
        "kind": kind,
        "sync": sync,
        "since": since,
        "until": until,
    }
    query = urllib.parse.urlencode({k: v for k, v in form.items() if v})
    return render(
        request,
        "records.html",
        section="records",
        records=rows,
        total=total,
        offset=offset,
        limit=limit,
        f=form,
        query=query,
    )


@router.get("/rooms", dependencies=[requires(Permission.ROOMS_READ)])
async def rooms_page(request: Request) -> HTMLResponse:
    return render(request, "rooms.html", section="rooms", rooms=await rooms_today(request))


@router.get("/audit", dependencies=[requires(Permission.AUDIT_READ)])
async def audit_page(
    request: Request,
    action: Annotated[str, Query(max_length=64)] = "",
    actor: Annotated[str, Query(max_length=128)] = "",
) -> HTMLResponse:
    log = context(request).audit
    entries = await log.entries(
        actor=actor or None, action=action or None, limit=200, newest_first=True
    )
    verified = await log.verify()
    return render(
        request,
        "audit.html",
        section="audit",
        entries=entries,
        verified=verified,
        action=action,
        actor=actor,
    )
