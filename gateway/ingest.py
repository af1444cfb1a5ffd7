"""The ingest path: decode, check the device, verify, commit, then acknowledge.

Order matters and is the point of this module: the device's ack is published only after the
record's transaction has committed, and the broker's copy is settled only after that. A crash
at any step leaves either no record (the broker redelivers, the device resends) or a committed
record whose redelivery is answered ``duplicate`` with the first verdict.

Every refusal is answered where the device can be addressed, counted by reason code and
logged with the device and message ids; nothing a device sends can stop this loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from devices.protocol import (
    MAX_EVT_BYTES,
    Ack,
    AckStatus,
    Envelope,
    ProtocolError,
    PunchBody,
    QueryBody,
    ReasonCode,
    ReceiptBody,
    Topic,
    TopicKind,
    Verdict,
    decode_event,
    encode_ack,
    parse_topic,
    topic,
)
from devices.protocol.limits import MAX_SAFE_INT
from gateway.metrics import GatewayMetrics
from gateway.notices.service import UNKNOWN_TEXT, NoticeService
from gateway.registry import DeviceRegistry
from gateway.rooms import RoomService
from gateway.store.errors import StoreError
from gateway.store.records import NewRecord, RecordWriter, SyncState, WriteResult, now_ms
from gateway.transport import Inbound, Transport
from gateway.verify import Decision, Verifier

log = logging.getLogger(__name__)

_REFUSED_VERDICT = Verdict(ok=False, text="Not recorded: see facilities")
# Check-in and button events without a room service (an Ingest built without one): refused
# for good, so a panel does not resend what nothing here can answer.
_NO_ROOMS = Decision(
    False,
    ReasonCode.BOOKING_NOT_FOUND,
    Verdict(ok=False, text="No room service: see facilities"),
)


class Ingest:
    def __init__(
        self,
        *,
        site: str,
        transport: Transport,
        writer: RecordWriter,
        registry: DeviceRegistry,
        verifier: Verifier,
        metrics: GatewayMetrics,
        busy_retry_s: float,
        on_commit: Callable[[], None] | None = None,
        notices: NoticeService | None = None,
        rooms: RoomService | None = None,
    ) -> None:
        self._site = site
        self._notices = notices
        self._rooms = rooms  # answers checkin and button events (gateway/rooms/)
        self._transport = transport
        self._writer = writer
        self._registry = registry
        self._verifier = verifier
        self._metrics = metrics
        self._busy_retry_s = busy_retry_s
        self._on_commit = on_commit
        self._ack_topics: dict[tuple[str, str], str] = {}  # (site, device) -> cmd/ack topic
        # (credential type, credential) -> the future of its latest punch being decided
        self._deciding: dict[tuple[str, str], asyncio.Future[None]] = {}
        self.in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def drain(self) -> None:
        """Wait for messages already being handled (on shutdown)."""
        await self._idle.wait()

    async def handle(self, msg: Inbound, where: Topic) -> bool:
        """Handle one event; ``True`` once it is answered and may be settled."""
        ctx: dict[str, Any] = {"site": where.site, "device_id": where.device_id}
        self.in_flight += 1
        self._idle.clear()
        try:
            await self._process(msg, where, ctx)
            return True
        except Exception:
            # A bug must not kill ingest; the message stays unsettled, so the broker keeps it.
            log.exception("unexpected error while handling a message", extra=ctx)
            self._metrics.invalid.labels(ReasonCode.INTERNAL_ERROR).inc()
            return False
        finally:
            self.in_flight -= 1
            if not self.in_flight:
                self._idle.set()

    async def _process(self, msg: Inbound, where: Topic, ctx: dict[str, Any]) -> None:
        try:
            envelope = decode_event(where, msg.payload)
        except ProtocolError as exc:
            msg_id, seq = _salvage_ids(msg.payload)
            ctx.update(msg_id=msg_id, reason=exc.reason_code)
            log.warning("refused malformed message: %s", exc.message, extra=ctx)
            self._refuse(msg, where, exc.reason_code, exc.message, msg_id, seq)
            return
        ctx.update(msg_id=envelope.msg_id, seq=envelope.seq)
        if not isinstance(envelope.body, PunchBody):
            await self._decide_and_store(msg, where, envelope, ctx)
            return
        # A person's punches are decided one after the other, in the order they arrived: an
        # outbox replayed after an outage sends them together, and each must be classified
        # with the one before it committed (a second punch a minute later is a repeat, not a
        # second clock-in). Keyed by the credential, before any await, so arrival order holds.
        key = (envelope.body.credential_type, envelope.body.credential)
        before = self._deciding.get(key)
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._deciding[key] = mine

        def release(_: object = None) -> None:
            mine.set_result(None)
            if self._deciding.get(key) is mine:
                del self._deciding[key]

        try:
            if before is not None:
                await asyncio.shield(before)  # cancelling this punch must not cancel the chain
            await self._decide_and_store(msg, where, envelope, ctx)
        finally:
            if before is None or before.done():
                release()
            else:  # cancelled while waiting: the next one still waits for the one before
                before.add_done_callback(release)

    async def _decide_and_store(
        self, msg: Inbound, where: Topic, envelope: Envelope, ctx: dict[str, Any]
    ) -> None:
        device = await self._registry.lookup(envelope.device_id)
        if device is None or device.revoked:
            reason = ReasonCode.UNKNOWN_DEVICE if device is None else ReasonCode.DEVICE_REVOKED
            text = (
                f"device {envelope.device_id!r} is not registered at site {self._site}; "
                "register it with `tack devices add`"
                if device is None
                else f"device {envelope.device_id!r} has been revoked"
            )
            ctx["reason"] = reason
            log.warning("refused message: %s", text, extra=ctx)
            self._refuse(msg, where, reason, text, envelope.msg_id, envelope.seq)
            return

        if isinstance(envelope.body, (PunchBody, QueryBody)):
            decision = await self._verifier.verify(envelope, device)
        elif isinstance(envelope.body, ReceiptBody):
            decision = await self._receipt_decision(envelope)
        elif self._rooms is not None:
            decision = await self._rooms.decide(envelope, device)
        else:
            decision = _NO_ROOMS
        if decision.retry_s is not None:  # the check cannot be made now: store nothing
            self._reply(
                msg,
                where,
                envelope,
                AckStatus.REJECTED,
                decision.reason,
                decision.verdict.text,
                None,
                decision.retry_s,
            )
            log.warning("verification deferred: %s", decision.reason, extra=ctx)
            return
        try:
            result = await self._writer.submit(_record(envelope, decision))
        except asyncio.QueueFull:
            self._reply(
                msg,
                where,
                envelope,
                AckStatus.REJECTED,
                ReasonCode.BUSY,
                "gateway busy; keep the punch and resend",
                None,
                self._busy_retry_s,
            )
            log.warning("commit queue full; answered busy", extra=ctx)
            return
        except StoreError as exc:
            self._reply(
                msg,
                where,
                envelope,
                AckStatus.REJECTED,
                ReasonCode.STORE_UNAVAILABLE,
                "gateway could not store the punch; keep it and resend",
                None,
                self._busy_retry_s,
            )
            log.error("store refused the record: %s", exc.message, extra=ctx)
            return
        if self._notices is not None and isinstance(envelope.body, ReceiptBody):
            try:
                await self._notices.receipt_stored(envelope, result)
            except StoreError as exc:
                # The record is stored but the receipt not marked: the resend is answered
                # duplicate and marks it then.
                self._reply(
                    msg,
                    where,
                    envelope,
                    AckStatus.REJECTED,
                    ReasonCode.STORE_UNAVAILABLE,
                    "gateway could not record the receipt; keep it and resend",
                    None,
                    self._busy_retry_s,
                )
                log.error("could not record a receipt: %s", exc.message, extra=ctx)
                return
        self._answer(msg, where, envelope, result, ctx)

    async def _receipt_decision(self, envelope: Envelope) -> Decision:
        """A must-read notice acknowledged (gateway/notices/); without the notice service no
        notice is known to anyone."""
        if self._notices is None:
            return Decision(False, ReasonCode.NOTICE_UNKNOWN, Verdict(ok=False, text=UNKNOWN_TEXT))
        return await self._notices.decide(envelope)

    def _answer(
        self,
        msg: Inbound,
        where: Topic,
        envelope: Envelope,
        result: WriteResult,
        ctx: dict[str, Any],
    ) -> None:
        verdict = Verdict.from_wire(result.verdict)
        if not result.inserted:
            self._metrics.duplicates.inc()
            how = "broker redelivery" if msg.redelivered else "device resend"
            log.info("duplicate answered with the first verdict (%s)", how, extra=ctx)
            self._reply(
                msg,
                where,
                envelope,
                AckStatus.DUPLICATE,
                ReasonCode.DUPLICATE,
                "already recorded",
                verdict,
                None,
            )
            return
        self._metrics.committed.inc()
        if self._on_commit is not None:
            self._on_commit()
        status = AckStatus.ACCEPTED if result.status == AckStatus.ACCEPTED else AckStatus.REJECTED
        reason = ReasonCode.parse(result.reason) or ReasonCode.INTERNAL_ERROR
        log.debug("stored as %s", status, extra={**ctx, "reason": reason})
        self._reply(msg, where, envelope, status, reason, verdict.text, verdict, None)

    def _reply(
        self,
        msg: Inbound,
        where: Topic,
        envelope: Envelope,
        status: AckStatus,
        reason: ReasonCode,
        text: str,
        verdict: Verdict | None,
        retry_s: float | None,
    ) -> None:
        ack = Ack(envelope.msg_id, envelope.seq, status, reason, text, verdict, retry_s)
        self._send_ack(msg, where, ack)

    def _refuse(
        self,
        msg: Inbound,
        where: Topic,
        reason: ReasonCode,
        text: str,
        msg_id: str | None,
        seq: int | None,
    ) -> None:
        self._metrics.invalid.labels(reason).inc()
        ack = Ack(msg_id, seq, AckStatus.REJECTED, reason, text, _REFUSED_VERDICT)
        self._send_ack(msg, where, ack)

    def _send_ack(self, msg: Inbound, where: Topic, ack: Ack) -> None:
        # Ack first; the transport settles after the handler returns. If we die between the two,
        # the broker redelivers and the device hears "duplicate"; the other order could leave a
        # device with no answer.
        key = (where.site, where.device_id)
        ack_topic = self._ack_topics.get(key)
        if ack_topic is None:
            if len(self._ack_topics) >= _MAX_ROUTES:
                self._ack_topics.clear()
            ack_topic = topic(where.site, where.device_id, TopicKind.CMD, "ack")
            self._ack_topics[key] = ack_topic
        self._transport.publish(ack_topic, encode_ack(ack))
        self._metrics.count_ack(ack.status, ack.reason)
        self._metrics.observe_ack_latency(time.monotonic() - msg.received_s)


def _record(envelope: Envelope, decision: Decision) -> NewRecord:
    """Punches that pass verification are uploaded; refusals, room events and queries stay
    local (a query is kept so that a resend is answered with the same verdict, and so that
    facilities can see who asked; it is not attendance)."""
    body = envelope.body
    punch = isinstance(body, PunchBody)
    return NewRecord(
        device_id=envelope.device_id,
        msg_id=envelope.msg_id,
        seq=envelope.seq,
        kind=envelope.kind,
        device_ts_ms=envelope.device_ts_ms,
        received_ts_ms=now_ms(),
        person_id=decision.person.person_id if decision.person else None,
        credential=body.credential if isinstance(body, (PunchBody, QueryBody)) else None,
        body=body.to_wire(),
        status=AckStatus.ACCEPTED if decision.accepted else AckStatus.REJECTED,
        reason=decision.reason,
        verdict=decision.verdict.to_wire(),
        sync_state=SyncState.PENDING if decision.accepted and punch else SyncState.LOCAL,
    )


def _salvage_ids(payload: bytes) -> tuple[str | None, int | None]:
    """Best effort: the id and seq of a refused message, so the device can match the answer."""
    if len(payload) > MAX_EVT_BYTES:
        return None, None
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    msg_id, seq = data.get("id"), data.get("seq")
    return (
        msg_id if isinstance(msg_id, str) and len(msg_id) <= 64 else None,
        seq
        if isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq <= MAX_SAFE_INT
        else None,
    )


# Topics seen, parsed: a fleet uses a few per device, and parsing checks every level.
_ROUTES: dict[str, Topic] = {}
_MAX_ROUTES = 20_000  # bounded whatever a peer invents; emptied when full


def route(msg: Inbound) -> Topic | None:
    """Parse the topic of an incoming message; ``None`` (logged) when unusable."""
    where = _ROUTES.get(msg.topic)
    if where is not None:
        return where
    try:
        where = parse_topic(msg.topic)
    except ProtocolError as exc:
        log.warning("ignored message on a bad topic: %s", exc.message, extra={"topic": msg.topic})
        return None
    if len(_ROUTES) >= _MAX_ROUTES:
        _ROUTES.clear()
    _ROUTES[msg.topic] = where
    return where
