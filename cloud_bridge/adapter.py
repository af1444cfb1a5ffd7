"""What the bridge needs from a backend, and the one vocabulary its errors come in.

Each backend (DingTalk-style, and later WeCom or Feishu) is an adapter behind
:class:`BackendAdapter`. An upload answers per record, because the backends refuse records one
by one (an unknown user, a punch too old) while the others in the same batch go through; the
runner turns those answers into store updates without knowing which backend spoke.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from devices.protocol.errors import TackError
from gateway.store.records import OutRecord
from gateway.store.roster import Person


class UploadOutcome(enum.StrEnum):
    ACCEPTED = "accepted"  # stored by this call
    DUPLICATE = "duplicate"  # the backend already had this idempotency key: also a success
    REFUSED = "refused"  # refused for good; retrying cannot help
    RETRY = "retry"  # not stored this time; the record stays pending
    # Not sent: an earlier record of the same device must go first and has to be retried, so
    # sending this one now would break the device's order at the backend. Stays pending.
    DEFERRED = "deferred"


@dataclass(frozen=True, slots=True)
class UploadResult:
    record_id: int
    outcome: UploadOutcome
    reason: str = ""
    retry_after_s: float | None = None
    errcode: int | None = None
    cause: str = ""  # a short label for metrics: "errcode_33012", "http_503", "timeout", ...

    @property
    def synced(self) -> bool:
        """The backend holds the record (stored now or by an earlier attempt)."""
        return self.outcome in (UploadOutcome.ACCEPTED, UploadOutcome.DUPLICATE)


@dataclass(frozen=True, slots=True)
class RosterPage:
    people: list[Person]
    next_cursor: str | None
    has_more: bool
    # person_id -> URL of the enrolment photo; absent or "" when the person has none. A new
    # URL means a new photo (DingTalk's avatar URLs change with the picture).
    avatars: dict[str, str] = field(default_factory=dict)
    # The latest backend modification time among the page's people (its clock, UTC ms), when
    # the backend tells: where an incremental pass starts (cloud_bridge.capabilities).
    modified_ms: int | None = None


@dataclass(frozen=True, slots=True)
class LeaveRecord:
    """One approved leave, ``[start_ms, end_ms)`` in UTC milliseconds."""

    person_id: str
    start_ms: int
    end_ms: int
    kind: str = ""


class BackendAdapter(Protocol):
    """One backend. ``upload`` returns one result per record, in the order given.

    Each adapter declares how many records one upload call carries and how many upload calls a
    second the backend allows; ``batch_size`` is how many records the runner hands it a round.
    """

    @property
    def batch_size(self) -> int: ...

    @property
    def records_per_call(self) -> int: ...

    @property
    def calls_per_s(self) -> float: ...

    async def upload(self, records: Sequence[OutRecord]) -> list[UploadResult]: ...

    async def pull_roster(self, cursor: str | None) -> RosterPage: ...

    async def fetch_photo(self, url: str) -> bytes: ...

    async def leave(
        self, person_ids: Sequence[str], start_ms: int, end_ms: int
    ) -> list[LeaveRecord]: ...

    async def aclose(self) -> None: ...


class CloudError(TackError):
    """The backend could not be reached or gave an answer the bridge cannot use.

    ``transient`` says whether the same call may succeed later; ``request`` is the HTTP
    request that failed, when there was one; ``errcode`` is the backend's code when it
    answered with one.
    """

    transient: bool = True

    def __init__(
        self,
        message: str,
        *,
        request: httpx.Request | None = None,
        errcode: int | None = None,
        retry_after_s: float | None = None,
        transient: bool | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.request = request
        self.errcode = errcode
        self.retry_after_s = retry_after_s
        self.status_code = status_code
        if transient is not None:
            self.transient = transient


class CloudTimeoutError(CloudError, TimeoutError):
    """No answer in time. The call may still have taken effect at the backend."""


class CloudConnectError(CloudError):
    """The backend could not be reached (refused, reset, DNS, proxy)."""


class CloudResponseError(CloudError):
    """An answer the bridge cannot use: an HTTP error status, or a body that is not the API's."""


class PhotoUnavailableError(CloudError):
    """This photo cannot be had at this URL (gone, or over the size limit); asking again for
    the same URL cannot help, a new URL may. ``reason`` is a short code for logs and status."""

    transient = False

    def __init__(self, message: str, *, reason: str, request: httpx.Request | None = None) -> None:
        super().__init__(message, request=request)
        self.reason = reason


class CloudAuthError(CloudError):
    """The backend refused the app key or secret; only a configuration change fixes it."""

    transient = False


class CloudConfigError(CloudError):
    """The configured base URL cannot be used at all (bad scheme, malformed URL)."""

    transient = False


def cause_of(exc: CloudError) -> str:
    """A short, bounded label for a failed call (metrics label values must not be free text)."""
    if exc.errcode is not None:
        return f"errcode_{exc.errcode}"
    if exc.status_code is not None:
        return f"http_{exc.status_code}"
    if isinstance(exc, CloudTimeoutError):
        return "timeout"
    if isinstance(exc, CloudConnectError):
        return "connect"
    if isinstance(exc, CloudAuthError):
        return "auth"
    return "bad_answer"


def _request_of(exc: Exception) -> httpx.Request | None:
    try:
        return exc.request if isinstance(exc, httpx.RequestError | httpx.HTTPStatusError) else None
    except RuntimeError:  # httpx raises this when no request was attached
        return None


def map_httpx_error(exc: httpx.HTTPError | httpx.InvalidURL, action: str) -> CloudError:
    """Translate an httpx error into the most specific :class:`CloudError`; the caller raises
    it ``from exc`` so the cause is kept."""
    request = _request_of(exc)
    where = f" ({request.method} {request.url.copy_with(query=None)})" if request else ""
    text = f"{action}{where}: {type(exc).__name__}: {exc}"
    cls: type[CloudError]
    if isinstance(exc, httpx.TimeoutException):
        cls = CloudTimeoutError
    elif isinstance(exc, httpx.NetworkError | httpx.ProxyError):
        cls = CloudConnectError
    elif isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        cls = CloudConfigError
        text += "; check bridge.base_url"
    else:  # ProtocolError, DecodingError, TooManyRedirects, HTTPStatusError, anything newer
        cls = CloudResponseError
    return cls(text, request=request)
