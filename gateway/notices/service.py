"""The notice service: sends must-read notices to devices and takes their receipts.

A device's pending notices go out as one retained ``cmd/notice`` (docs/protocol.md, section 5):
the broker hands them to a device that was offline as soon as it connects. The gateway
publishes a device's list whenever it changed (the store's version is ahead of the version
last published: :mod:`gateway.notices.store`), again on every birth of the device (covering a
broker restarted without persistence), and for every device on each new broker connection and
at start. A receipt (event kind ``receipt``) is stored as a local record by the ingest path;
this service decides its answer and records the first receipt per notice and device, and the
device's list is published again without the notice (an empty list once all are read).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

import aiosqlite

from devices.protocol import (
    AckStatus,
    Envelope,
    ReasonCode,
    ReceiptBody,
    TopicKind,
    Verdict,
    encode_notice,
    topic,
)
from devices.protocol.errors import TackError
from devices.protocol.limits import (
    MAX_NOTICE_FROM_CHARS,
    MAX_NOTICE_TEXT_CHARS,
    MAX_NOTICE_TITLE_CHARS,
)
from gateway.notices import store
from gateway.store.devices import DeviceType, list_devices
from gateway.store.errors import StoreError
from gateway.store.records import WriteResult, now_ms
from gateway.verify import Decision

log = logging.getLogger(__name__)

READ_TEXT = "Read: thank you"
UNKNOWN_TEXT = "Notice not found: nothing to confirm"


class NoticeError(TackError):
    """A notice that cannot be sent as asked; the message says what to change."""


class Publisher(Protocol):
    """What the service needs of the gateway's MQTT transport."""

    connected: asyncio.Event
    connects: int

    def publish(
        self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1
    ) -> None: ...


def check_text(title: str, text: str, sender: str | None) -> None:
    """Refuse (:class:`NoticeError`) what a device could not show whole."""
    if not text.strip():
        raise NoticeError("the notice text is empty: say what people must read (--text)")
    if len(text) > MAX_NOTICE_TEXT_CHARS:
        raise NoticeError(
            f"the notice text is {len(text)} characters; a device shows at most "
            f"{MAX_NOTICE_TEXT_CHARS}: shorten it"
        )
    if len(title) > MAX_NOTICE_TITLE_CHARS:
        raise NoticeError(f"the title is {len(title)} characters; at most {MAX_NOTICE_TITLE_CHARS}")
    if sender is not None and len(sender) > MAX_NOTICE_FROM_CHARS:
        raise NoticeError(
            f"the sender's name is {len(sender)} characters; at most {MAX_NOTICE_FROM_CHARS}"
        )


async def resolve_targets(
    db: aiosqlite.Connection,
    to: Sequence[str] = (),
    *,
    all_terminals: bool = False,
    all_panels: bool = False,
) -> list[str]:
    """The registered, not revoked devices a notice goes to; :class:`NoticeError` naming the
    devices that are unknown or revoked, or when nothing is chosen."""
    devices = {d.device_id: d for d in await list_devices(db)}
    chosen: dict[str, None] = {}
    unknown = [d for d in to if d not in devices]
    if unknown:
        raise NoticeError(
            f"unknown device(s) {', '.join(map(repr, unknown))}; see `tack devices list`"
        )
    revoked = [d for d in to if devices[d].revoked]
    if revoked:
        raise NoticeError(f"device(s) {', '.join(map(repr, revoked))} are revoked")
    chosen.update(dict.fromkeys(to))
    for d in devices.values():
        if d.revoked:
            continue
        if (all_terminals and d.device_type is DeviceType.CLOCK_TERMINAL) or (
            all_panels and d.device_type is DeviceType.MEETING_PANEL
        ):
            chosen[d.device_id] = None
    if not chosen:
        which = "terminals" if all_terminals else "meeting panels" if all_panels else "devices"
        raise NoticeError(
            f"no {which} to send to: name devices with --to, or register some (`tack devices add`)"
        )
    return list(chosen)


async def send_notice(
    db: aiosqlite.Connection,
    *,
    title: str,
    text: str,
    sender: str | None,
    to: Sequence[str] = (),
    all_terminals: bool = False,
    all_panels: bool = False,
) -> tuple[store.Notice, list[str]]:
    """Check and store a notice; a running gateway publishes it within a registry refresh
    (``registry.refresh_s``). Returns the notice and the devices it goes to."""
    check_text(title, text, sender)
    devices = await resolve_targets(db, to, all_terminals=all_terminals, all_panels=all_panels)
    notice = await store.create_notice(
        db, title=title, text=text, sender=sender, device_ids=devices
    )
    return notice, devices


class NoticeService:
    """Publishes notice lists and answers receipts; run :meth:`run` as a task."""

    def __init__(
        self, db: aiosqlite.Connection, transport: Publisher, site: str, *, poll_s: float
    ) -> None:
        self._db = db
        self._transport = transport
        self._site = site
        self._poll_s = poll_s
        self._kick = asyncio.Event()
        self._births: set[str] = set()
        self._seen_connects = 0
        self.published = 0  # lists published, for tests and logs

    def kick(self) -> None:
        """Publish changed lists now rather than at the next poll."""
        self._kick.set()

    def on_birth(self, device_id: str) -> None:
        """A device came online: publish its list again, in case the broker lost it."""
        self._births.add(device_id)
        self._kick.set()

    async def run(self) -> None:
        while True:
            self._kick.clear()
            try:
                await self.publish_due()
            except (StoreError, aiosqlite.Error) as exc:
                log.error("could not publish notices: %s", exc, extra={"site": self._site})
            except Exception:  # a bug must not end the notices for good: try again next poll
                log.exception("publishing notices failed", extra={"site": self._site})
            try:
                async with asyncio.timeout(self._poll_s):
                    await self._kick.wait()
            except TimeoutError:
                pass

    async def publish_due(self) -> None:
        """Publish every list that changed; nothing while the broker is away (the publish
        would be lost), and everything again on a new connection."""
        t = self._transport
        if not t.connected.is_set():
            return
        if t.connects != self._seen_connects:
            self._seen_connects = t.connects
            await store.mark_all_due(self._db)
        births, self._births = self._births, set()
        for device_id in births:
            await store.mark_due(self._db, device_id)
        for device_id, version in await store.due_devices(self._db):
            notices = await store.device_notices(self._db, device_id)
            payload, sent = _encode(notices)
            t.publish(topic(self._site, device_id, TopicKind.CMD, "notice"), payload, retain=True)
            await store.mark_published(self._db, device_id, version, sent)
            self.published += 1
            log.info(
                "notices published: %d pending",
                len(sent),
                extra={"site": self._site, "device_id": device_id},
            )

    async def decide(self, envelope: Envelope) -> Decision:
        """Accept a receipt for a notice the device was sent; refuse any other."""
        body = envelope.body
        if isinstance(body, ReceiptBody) and await store.is_target(
            self._db, body.notice, envelope.device_id
        ):
            return Decision(True, ReasonCode.OK, Verdict(ok=True, text=READ_TEXT))
        return Decision(False, ReasonCode.NOTICE_UNKNOWN, Verdict(ok=False, text=UNKNOWN_TEXT))

    async def receipt_stored(self, envelope: Envelope, result: WriteResult) -> None:
        """After the receipt's record committed (or was found a duplicate): record the first
        receipt of the notice on the device and publish the shorter list. Runs before the ack,
        so a crash in between leaves the event with the broker, and the redelivery, answered
        ``duplicate``, records it then."""
        body = envelope.body
        if not isinstance(body, ReceiptBody) or result.status != AckStatus.ACCEPTED:
            return
        first = await store.record_receipt(
            self._db,
            notice_id=body.notice,
            device_id=envelope.device_id,
            device_ts_ms=envelope.device_ts_ms,
            by=body.by,
            msg_id=envelope.msg_id,
        )
        if first:
            log.info(
                "notice %s read",
                body.notice,
                extra={"site": self._site, "device_id": envelope.device_id},
            )
            self.kick()


def _encode(notices: Sequence[store.Notice]) -> tuple[bytes, list[str]]:
    """The ``cmd/notice`` payload and the ids it carries: the oldest that fit 8192 bytes."""
    items = [n.item() for n in notices]
    while True:
        try:
            return encode_notice(now_ms(), items), [i.notice_id for i in items]
        except ValueError:
            if not items:
                raise
            items.pop()  # the newest waits until an older one is read
