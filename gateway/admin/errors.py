"""One error shape for the whole API: ``{"error": {"code": ..., "message": ...}}``.

The code is stable and meant for programs; the message is for the person and says what to do.
The web UI turns the same errors into pages (see :func:`gateway.admin.ui.error_page`).
"""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def error_json(err: ApiError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": err.code, "message": err.message}},
        status_code=err.status,
        headers=err.headers,
    )


def is_api(request: Request) -> bool:
    path = request.url.path
    return path.startswith("/api/") or path == "/metrics"


def explain_validation(exc: RequestValidationError) -> ApiError:
    """Name each bad field and what it should be, in one sentence a person can act on."""
    parts = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            reason = (err.get("ctx") or {}).get("error", "")
            parts.append(f"the request body is not valid JSON ({reason}); send a JSON object")
            continue
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "form")]
        where = ".".join(loc) or "request"
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return ApiError(422, "invalid_input", "; ".join(parts) or "the request is not valid")
