"""What an adapter may pull besides the roster and leave: optional capabilities.

Backends differ in what their open API offers: one has attendance groups with check-in
locations, another has no meeting rooms, a third cannot list "changed since". So each pull is a
small protocol of its own, and an adapter supports one by having its method; the runner asks
``isinstance(adapter, GeofenceSource)`` and so on, and skips what an adapter lacks (logged once
at start), instead of calling a method that can only fail. ``docs/adapters.md`` shows how a
third-party adapter declares them.

Every method raises :class:`cloud_bridge.adapter.CloudError` (transient or not) when the backend
cannot answer; the runner retries that pull alone after its backoff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from cloud_bridge.adapter import RosterPage, UploadOutcome
from gateway.attendance.balances import LeaveBalance
from gateway.attendance.policy import Shift
from gateway.notices.store import OutReceipt
from gateway.store.rooms import Booking, Room
from gateway.verify.geo.fence import Geofence


@dataclass(frozen=True, slots=True)
class BookingPage:
    bookings: list[Booking]
    next_cursor: str | None
    has_more: bool
    # The latest backend modification time on the page (its clock, UTC ms): where the next
    # incremental pull starts once the whole pass is read.
    modified_ms: int | None = None


@runtime_checkable
class RosterChanges(Protocol):
    """The roster, only people changed at or after ``since_ms`` (the backend's clock), with
    ``RosterPage.modified_ms`` set; ``since_ms = 0`` lists everyone in the same order.

    Deletions cannot be seen this way (a person removed is simply not listed), so the runner
    still reads the whole roster every ``bridge.roster_full_every`` passes."""

    async def pull_roster_changes(self, cursor: str | None, since_ms: int) -> RosterPage: ...


@runtime_checkable
class GeofenceSource(Protocol):
    """Every check-in location of the backend, as fences; names unique, at most 64 chars."""

    async def geofences(self) -> list[Geofence]: ...


@runtime_checkable
class ShiftSource(Protocol):
    """Every shift rule of the backend as ``(shift_id, shift)``; ``shift.team`` is a roster
    department, empty for everyone else."""

    async def shifts(self) -> list[tuple[str, Shift]]: ...


@runtime_checkable
class RoomSource(Protocol):
    """Meeting rooms (all of them) and bookings changed at or after ``since_ms``, cancelled
    ones included with ``status = "cancelled"``."""

    async def rooms(self) -> list[Room]: ...

    async def bookings(self, cursor: str | None, since_ms: int) -> BookingPage: ...


@dataclass(frozen=True, slots=True)
class RoomChange:
    """A change made at a room panel (gateway/rooms/), for the backend: ``op`` is ``checkin``,
    ``release`` (a no-show), ``book`` (a new booking, ``start_ms``..``end_ms``), ``extend``
    or ``end`` (the new ``end_ms``), or ``cancel``. ``key`` is unique per change, for ever."""

    key: str
    op: str
    booking_id: str
    room_id: str
    start_ms: int | None = None
    end_ms: int | None = None
    at_ms: int | None = None


@runtime_checkable
class RoomWriter(Protocol):
    """Writes a room change back. The backend must apply a ``key`` once, however often it is
    sent: an answer lost on the way is followed by the same call again."""

    async def write_room_change(self, change: RoomChange) -> None: ...


@runtime_checkable
class Notifier(Protocol):
    """Sends ``text`` to ``user_ids`` (roster person ids) as a work notification, once per
    ``key`` (a meeting reminder: gateway/rooms/)."""

    async def notify(self, key: str, user_ids: Sequence[str], text: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ReceiptResult:
    """The backend's answer for one receipt (``key``: its idempotency key). ``outcome`` as for
    records: accepted or duplicate (stored), refused (for good, with ``reason``) or retry."""

    key: str
    outcome: UploadOutcome
    reason: str = ""
    retry_after_s: float | None = None
    cause: str = ""  # a short label for logs and counters, as cause_of() gives


@runtime_checkable
class ReceiptSink(Protocol):
    """Stores must-read notice receipts (gateway/notices/), one result per receipt in the
    order given. The backend must store an ``idempotency_key`` once however often it is sent:
    an answer lost on the way is followed by the same receipt again."""

    async def upload_receipts(self, receipts: Sequence[OutReceipt]) -> list[ReceiptResult]: ...


@runtime_checkable
class LeaveBalanceSource(Protocol):
    """What each of ``person_ids`` has left of each kind of leave."""

    async def leave_balances(self, person_ids: Sequence[str]) -> list[LeaveBalance]: ...


CAPABILITIES: dict[str, type] = {
    "roster_changes": RosterChanges,
    "geofences": GeofenceSource,
    "shifts": ShiftSource,
    "rooms": RoomSource,
    "leave_balances": LeaveBalanceSource,
    "room_writes": RoomWriter,
    "notify": Notifier,
    "receipts": ReceiptSink,
}


def capabilities_of(adapter: object) -> list[str]:
    """The names of the optional pulls ``adapter`` supports, for logs and ``tack status``."""
    return [name for name, proto in CAPABILITIES.items() if isinstance(adapter, proto)]
