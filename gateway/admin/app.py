"""The admin app: ``create_app(settings, db, service=None)``.

Inside the gateway, ``service`` is the running :class:`~gateway.service.Gateway` (its metrics,
its notice service); ``tack admin serve`` and the tests pass none and work on the store alone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiosqlite
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from devices.protocol.errors import TackError
from gateway.admin import accounts, metrics, ui
from gateway.admin.api import accounts as accounts_api
from gateway.admin.api import audit, backups, devices, notices, people, records, rooms, session
from gateway.admin.bodylimit import MULTIPART_MARGIN, BodyLimit
from gateway.admin.context import AdminContext
from gateway.admin.errors import ApiError, error_json, explain_validation, is_api
from gateway.config import TackSettings
from gateway.store.records import now_ms

if TYPE_CHECKING:
    from gateway.service import Gateway

STATIC_DIR = Path(__file__).with_name("static")
log = logging.getLogger(__name__)


def create_app(
    settings: TackSettings,
    db: aiosqlite.Connection,
    service: Gateway | None = None,
    *,
    clock: Callable[[], int] = now_ms,
) -> FastAPI:
    app = FastAPI(
        title="Tack admin API",
        description="Devices, people and faces, records, rooms, notices, backups and the audit "
        "log of one Tack gateway. Log in with POST /api/login and send the token as "
        "'Authorization: Bearer <token>'. Roles and permissions: docs/admin.md.",
        docs_url="/api/docs",
        swagger_ui_oauth2_redirect_url="/api/docs/oauth2-redirect",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.admin = AdminContext.build(settings, db, service, clock)
    app.state.admin_metrics = metrics.AdminMetrics(
        with_gateway=service is not None,
        with_bridge=service is not None and service.bridge is not None,
    )

    for router in (
        session.router,
        devices.router,
        people.router,
        records.router,
        rooms.router,
        notices.router,
        backups.router,
        audit.router,
        accounts_api.router,
    ):
        app.include_router(router, prefix="/api")
    app.include_router(metrics.router)
    app.include_router(ui.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_error_handlers(app)
    app.add_middleware(
        BodyLimit, upload_bytes=settings.face.max_bytes + MULTIPART_MARGIN, answer=_answer
    )
    return app


def _answer(request: Request, err: ApiError) -> Response:
    return error_json(err) if is_api(request) else ui.error_page(request, err)


def _install_error_handlers(app: FastAPI) -> None:
    answer = _answer

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return answer(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        err = explain_validation(exc)
        if not is_api(request):
            err.status = 400
        return answer(request, err)

    async def on_tack_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, TackError)
        status = 404 if isinstance(exc, accounts.AccountNotFoundError) else 409
        code = "not_found" if status == 404 else "refused"
        return answer(request, ApiError(status, code, exc.message))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        message = {
            404: f"nothing at {request.url.path}; the API is listed at /api/docs",
            405: f"{request.method} is not allowed on {request.url.path}; see /api/docs",
        }.get(exc.status_code, str(exc.detail))
        return answer(request, ApiError(exc.status_code, code, message))

    async def on_bug(request: Request, exc: Exception) -> Response:
        # The route's template, not the path: a path can hold a person's id.
        route = request.scope.get("route")
        log.error(
            "admin request %s %s failed",
            request.method,
            getattr(route, "path", "?"),
            exc_info=exc,
        )
        return answer(
            request,
            ApiError(
                500,
                "internal_error",
                "the gateway could not do this; it is logged. Try again, and tell whoever runs "
                "the gateway if it keeps happening",
            ),
        )

    app.add_exception_handler(Exception, on_bug)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(TackError, on_tack_error)
    app.add_exception_handler(StarletteHTTPException, on_http)
