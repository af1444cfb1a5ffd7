"""The attendance decision for a punch: who, face, where, and what it means for the shift.

In order, each step only when the one before passed:

1. **who**: the card or employee number against the roster (:mod:`gateway.verify.card`);
2. **face** (``face.enabled``): the punch's camera frame against the person's enrolled face
   (:mod:`gateway.verify.face`); the frame travels on ``evt/frame`` just before the punch and is
   waited for up to ``face.frame_wait_s``; a full worker pool answers ``busy`` (nothing stored);
3. **where**: the GPS fix against the site's geofences and the spoof checks
   (:mod:`gateway.verify.geo`), when the site has fences;
4. **what it means**: the shift policy (:mod:`gateway.attendance`) classifies the punch (on
   time, late, left early, no shift) or answers a repeat within ``attendance.repeat_window_s``
   with "already recorded"; a refusal from steps 2-3 is classified as refused.

Every decision except ``busy`` is stored, so the audit trail shows refusals too.

A terminal's ``query`` (a person asking their leave balance) takes step 1 only and is answered
with the balances (:meth:`AttendanceVerifier.answer_query`).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import aiosqlite

from devices.protocol import Envelope, Frame, PunchBody, QueryBody, ReasonCode, Verdict
from gateway.attendance import Policy
from gateway.attendance.balances import describe_balances, leave_balance
from gateway.attendance.leave import LEAVE_VERSION_KEY
from gateway.attendance.recent import RecentPunches
from gateway.attendance.shifts import SHIFTS_VERSION_KEY, effective_policy
from gateway.config import TackSettings
from gateway.security.keyring import keyring_for
from gateway.store.devices import Device
from gateway.store.frames import load_frame
from gateway.store.roster import get_value
from gateway.verify import Decision
from gateway.verify.card import RosterVerifier
from gateway.verify.geo import GeoPolicy, GeoVerifier
from gateway.verify.geo.store import GEOFENCES_VERSION_KEY, load_fences, recent_fixes

if TYPE_CHECKING:
    from gateway.verify.face import FaceVerifier

_FRAME_POLL_S = 0.01  # a point query on the aux connection: cheap, and it bounds the wait
_SPEED_HISTORY_MS = 24 * 3600 * 1000

FACE_TEXT: dict[ReasonCode, str] = {
    ReasonCode.FACE_NOT_FOUND: "No face seen: look at the camera and try again",
    ReasonCode.FACE_MULTIPLE: "One person at a time, please",
    ReasonCode.FACE_TOO_SMALL: "Step closer to the camera",
    ReasonCode.FACE_BLURRY: "Hold still and try again",
    ReasonCode.FACE_TOO_DARK: "Too dark: face the light",
    ReasonCode.FACE_NOT_ENROLLED: "No face on file: see facilities",
    ReasonCode.FACE_MISMATCH: "Face does not match the card",
    ReasonCode.FACE_UNKNOWN: "Face not recognised",
    ReasonCode.FRAME_REPLAYED: "Photo already used: try again",
    ReasonCode.IMAGE_CORRUPT: "Camera error: try again",
    ReasonCode.IMAGE_TOO_LARGE: "Camera error: see facilities",
}


class AttendanceVerifier:
    def __init__(
        self,
        db: aiosqlite.Connection,
        settings: TackSettings,
        roster: RosterVerifier,
        geo: GeoVerifier,
        policy: Policy,
        face: FaceVerifier | None = None,
    ) -> None:
        self._db = db
        self._settings = settings
        self.roster = roster
        self.geo = geo
        self.policy = policy
        self.face = face
        self._fences_version: str | None = None
        # The policy with the backend's shifts in place (gateway.attendance.shifts), read at
        # each reload rather than for each punch: the bridge changes shifts a few times a year.
        self._effective = policy
        self._shifts_version: str | None = None
        # The people's recent punches and leave, so a punch's classification rarely waits for
        # the store; the record writer tells it what it commits (gateway/service.py).
        self.recent = RecentPunches(db)
        self._leave_version: str | None = None

    @classmethod
    async def open(cls, db: aiosqlite.Connection, settings: TackSettings) -> AttendanceVerifier:
        """Build every step from the settings and the store; starts the face workers."""
        roster = RosterVerifier(db)
        await roster.reload_if_changed()
        geo = GeoVerifier(
            await load_fences(db, settings.site), GeoPolicy.from_settings(settings.attendance)
        )
        now = int(time.time() * 1000)
        geo.seed(await recent_fixes(db, now - _SPEED_HISTORY_MS, keyring_for(settings)))
        face: FaceVerifier | None = None
        if settings.face.enabled:
            from gateway.verify.face import FaceVerifier  # needs the `face` extra

            face = FaceVerifier.from_settings(db, settings.face, keyring_for(settings))
            await face.start()
        verifier = cls(db, settings, roster, geo, Policy.from_settings(settings.attendance), face)
        verifier._fences_version = await get_value(db, GEOFENCES_VERSION_KEY)
        verifier._shifts_version = await get_value(db, SHIFTS_VERSION_KEY)
        verifier._leave_version = await get_value(db, LEAVE_VERSION_KEY)
        verifier._effective = await effective_policy(db, verifier.policy)
        return verifier

    async def close(self) -> None:
        if self.face is not None:
            await self.face.close()

    @property
    def people(self) -> int:
        return self.roster.people

    async def reload_if_changed(self) -> bool:
        """Roster, geofences, face templates, shifts and leave changed by the bridge or the
        CLI. Leave first: a failure to reload the rest must not keep an old leave copy."""
        leave = await get_value(self._db, LEAVE_VERSION_KEY)
        if leave != self._leave_version:
            self.recent.leave_changed()
            self._leave_version = leave
        changed = await self.roster.reload_if_changed()
        version = await get_value(self._db, GEOFENCES_VERSION_KEY)
        if version != self._fences_version:
            self.geo.replace_fences(await load_fences(self._db, self._settings.site))
            self._fences_version = version
            changed = True
        if self.face is not None:
            changed = await self.face.reload() or changed
        shifts = await get_value(self._db, SHIFTS_VERSION_KEY)
        if shifts != self._shifts_version:
            self._effective = await effective_policy(self._db, self.policy)
            self._shifts_version = shifts
            changed = True
        return changed

    async def verify(self, envelope: Envelope, device: Device) -> Decision:
        body = envelope.body
        if isinstance(body, QueryBody):
            return await self.answer_query(envelope, device)
        if not isinstance(body, PunchBody):
            raise TypeError(f"AttendanceVerifier decides punches and queries, not {envelope.kind}")
        who = await self.roster.verify(envelope, device)
        if not who.accepted or who.person is None:
            return who
        person = who.person
        refusal: ReasonCode | None = None
        text = ""
        if self.face is not None:
            early = body.photo is not None and self.face.has_frame(
                envelope.device_id, envelope.msg_id
            )
            jpeg = None if early else await self._frame(envelope, body)
            if jpeg is None and not early:
                refusal, text = ReasonCode.FACE_NOT_FOUND, "No photo: look at the camera"
            else:
                seen = await self.face.check(envelope.device_id, envelope.msg_id, jpeg, person)
                if seen.reason is ReasonCode.BUSY:
                    return Decision(
                        False,
                        ReasonCode.BUSY,
                        Verdict(ok=False, text="Busy: try again"),
                        person,
                        retry_s=seen.retry_s or self._settings.face.busy_retry_s,
                    )
                if not seen.ok:
                    refusal, text = seen.reason, FACE_TEXT.get(seen.reason, "Face check failed")
        if refusal is None:
            where = self.geo.check(
                body.gps,
                person_id=person.person_id,
                device_id=envelope.device_id,
                punch_ts_ms=envelope.device_ts_ms,
                received_ms=int(time.time() * 1000),
            )
            if not where.ok:
                refusal, text = where.reason, where.text
        ts = envelope.device_ts_ms
        policy = self._effective
        context = await self.recent.context(
            person.person_id, ts, policy.local_day(ts), (envelope.device_id, envelope.msg_id)
        )
        meaning = policy.classify(
            person,
            ts,
            context.previous,
            refusal=refusal,
            refusal_text=text,
            leave_days=context.leave_days,
        )
        # A repeat is answered "already recorded" (green) and kept locally, never uploaded.
        accepted = meaning.accepted and meaning.record and meaning.reason is ReasonCode.OK
        return Decision(accepted, meaning.reason, meaning.verdict(person), person)

    async def answer_query(self, envelope: Envelope, device: Device) -> Decision:
        """A person asked their leave balance: the roster check of a punch (an unknown or
        inactive person is refused as a punch would be), then the balances the bridge last
        pulled. No face, GPS or shift check: nothing is clocked, and a refusal at the door for
        a photo would only keep a person from reading their own balance."""
        who = await self.roster.verify(envelope, device)
        if not who.accepted or who.person is None:
            return who
        person = who.person
        text = describe_balances(await leave_balance(self._db, person.person_id))
        verdict = Verdict(ok=True, name=person.name, text=text, cls="balance")
        return Decision(True, ReasonCode.OK, verdict, person)

    def frame_arrived(self, frame: Frame) -> None:
        """``evt/frame`` came in: start its face analysis before its punch arrives."""
        if self.face is not None:
            self.face.prefetch(frame.device_id, frame.msg_id, frame.data)

    async def _frame(self, envelope: Envelope, body: PunchBody) -> bytes | None:
        """The punch's frame, waiting a moment for it: topics are not ordered against each
        other, so the frame sent just before the punch may arrive just after it."""
        if body.photo is None:
            return None
        deadline = time.monotonic() + self._settings.face.frame_wait_s
        while True:
            frame = await load_frame(
                self._db, envelope.device_id, envelope.msg_id, keyring_for(self._settings)
            )
            if frame is not None or time.monotonic() >= deadline:
                return frame.data if frame is not None else None
            await asyncio.sleep(_FRAME_POLL_S)
