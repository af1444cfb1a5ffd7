"""Request bodies are refused by size before anything reads them.

Routes parse their body (JSON, a form, an upload) before their permission check runs, so
without this anyone who can reach the port could make the app read a body of any size. This
ASGI middleware answers from the headers alone, in the app's error shape:

- ``413 body_too_large`` when ``Content-Length`` is over the limit: :data:`SMALL_BODY_BYTES`
  for every route, the face photo limit (``face.max_bytes``) plus :data:`MULTIPART_MARGIN` for
  the upload routes (:data:`UPLOAD_ROUTES`);
- ``411 length_required`` for a body sent without ``Content-Length`` (chunked), whose size
  would only be known by reading it. Browsers, curl and the usual HTTP libraries send it.

A reverse proxy in front should cap bodies too (nginx ``client_max_body_size``, Caddy
``request_body max_size``); see docs/admin.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.admin.errors import ApiError

SMALL_BODY_BYTES = 64 * 1024
MULTIPART_MARGIN = 64 * 1024  # the multipart framing and the form's other fields
UPLOAD_ROUTES = (re.compile(r"/api/people/[^/]+/faces"),)


def is_upload(method: str, path: str) -> bool:
    return method == "POST" and any(route.fullmatch(path) for route in UPLOAD_ROUTES)


class BodyLimit:
    def __init__(
        self,
        app: ASGIApp,
        *,
        upload_bytes: int,
        answer: Callable[[Request, ApiError], Response],
        small_bytes: int = SMALL_BODY_BYTES,
    ) -> None:
        self.app = app
        self.upload_bytes = upload_bytes
        self.small_bytes = small_bytes
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        err = self.refusal(scope)
        if err is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        response = self.answer(request, err)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)

    def refusal(self, scope: Scope) -> ApiError | None:
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        upload = is_upload(scope["method"], scope["path"])
        limit = self.upload_bytes if upload else self.small_bytes
        what = (
            "a photo upload (face.max_bytes, plus room for the form)" if upload else "this request"
        )
        if length is None:
            if not chunked:
                return None
            return ApiError(
                411,
                "length_required",
                "send the body with a Content-Length header (not chunked): the gateway checks "
                "the size before reading it",
            )
        try:
            size = int(length)
        except ValueError:
            return ApiError(400, "bad_request", "the Content-Length header is not a number")
        if size > limit:
            return ApiError(
                413,
                "body_too_large",
                f"the request body is {size} bytes; {what} may have at most {limit}",
            )
        return None
