"""What the simulator's write APIs (room changes, reminders, notice receipts) share: the
outage and token checks, reading a JSON body into a model, and a lost answer."""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from simulators.backend.state import BackendState, Errcode

M = TypeVar("M", bound=BaseModel)


async def read_body(
    state: BackendState, model: type[M], request: Request, access_token: str | None
) -> M | dict[str, Any] | JSONResponse:
    """The request's body as ``model``, or the answer the backend gives instead: 503 in an
    outage, an errcode for a bad token or a bad parameter (naming it)."""
    if state.in_outage():
        return JSONResponse(
            {"errcode": Errcode.SYSTEM_BUSY, "errmsg": "simulated outage"}, status_code=503
        )
    code = state.check_token(access_token)
    if code != Errcode.OK:
        return {"errcode": code, "errmsg": "invalid or expired access_token"}
    try:
        raw = await request.json()
    except ValueError:
        raw = None
    try:
        return model.model_validate(raw if isinstance(raw, dict) else {})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "body"
        return {"errcode": Errcode.INVALID_PARAMETER, "errmsg": f"invalid parameter {name}"}


def lost_answer() -> JSONResponse:
    """The write is done but its answer does not arrive: the client must retry, idempotently."""
    return JSONResponse(
        {"errcode": Errcode.SYSTEM_BUSY, "errmsg": "simulated lost answer"}, status_code=503
    )
