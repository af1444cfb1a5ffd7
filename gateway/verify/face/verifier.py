"""The face check of a punch, and enrolment: what the ingest path and the bridge call.

``check`` takes the frame a terminal sent with a punch and answers with a :class:`FaceResult`:

- with ``claimed_person`` (card or employee number + face, 1:1): is this that person's face?
  Distance to their closest template <= ``threshold``.
- without (face only, 1:N): whose face is it? The closest person within ``threshold_1n`` who is
  also ``margin_1n`` ahead of the next person.

Every refusal carries a reason code the terminal can show (docs/protocol.md section 7). When
the encoding pool is full the answer is ``busy`` with ``retry_s``, never a wait without end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiosqlite
import numpy as np
import numpy.typing as npt

from devices.protocol.reasons import ReasonCode
from gateway.config import FaceSettings
from gateway.security.keyring import Keyring
from gateway.store.roster import Person
from gateway.verify.face.errors import FaceBusyError
from gateway.verify.face.gallery import Gallery
from gateway.verify.face.image import Analysis, QualityLimits
from gateway.verify.face.pool import EncoderPool
from gateway.verify.face.replay import ReplayGuard, ReplayHit
from gateway.verify.face.templates import TemplateStore

log = logging.getLogger(__name__)

_MAX_EARLY = 64  # frames analysed ahead of their punches
_EARLY_TTL_S = 30.0


@dataclass(frozen=True, slots=True)
class FaceResult:
    ok: bool
    reason: ReasonCode
    person: Person | None = None  # the claimed person (1:1) or the one recognised (1:N)
    person_id: str | None = None  # recognised or claimed, even when not in the roster
    distance: float | None = None
    detail: str = ""
    retry_s: float | None = None  # set with ``busy``
    replay_of: ReplayHit | None = None


@dataclass(frozen=True, slots=True)
class PhotoOutcome:
    index: int
    reason: ReasonCode
    detail: str


@dataclass(frozen=True, slots=True)
class EnrollResult:
    person_id: str
    template_ids: list[int]
    rejected: list[PhotoOutcome] = field(default_factory=list)

    @property
    def enrolled(self) -> int:
        return len(self.template_ids)


def limits_from(settings: FaceSettings) -> QualityLimits:
    return QualityLimits(
        max_bytes=settings.max_bytes,
        max_pixels=settings.max_pixels,
        min_brightness=settings.min_brightness,
        min_face_px=settings.min_face_px,
        min_sharpness=settings.min_sharpness,
    )


class FaceVerifier:
    def __init__(
        self,
        db: aiosqlite.Connection,
        keys: bytes | Keyring,
        *,
        threshold: float,
        threshold_1n: float,
        margin_1n: float,
        pool: EncoderPool,
        replay: ReplayGuard | None = None,
    ) -> None:
        self._db = db
        self.templates = TemplateStore(db, keys)
        self.threshold = threshold
        self.threshold_1n = threshold_1n
        self.margin_1n = margin_1n
        self.pool = pool
        self.replay = replay
        self._persisting: set[asyncio.Task[None]] = set()
        self._early: dict[tuple[str, str], asyncio.Task[Analysis]] = {}
        self.gallery = Gallery([], np.zeros((0, 128)))
        self.damaged: list[int] = []
        self._version: str | None = None
        self._loaded = False

    @classmethod
    def from_settings(
        cls, db: aiosqlite.Connection, settings: FaceSettings, keyring: Keyring
    ) -> FaceVerifier:
        """Build from ``[face]``, sealing templates with ``keyring``."""
        pool = EncoderPool(
            workers=settings.workers,
            queue=settings.queue,
            retry_s=settings.busy_retry_s,
            limits=limits_from(settings),
        )
        replay = ReplayGuard(
            db,
            max_bits=settings.replay_max_bits,
            window_ms=int(settings.replay_window_days * 86_400_000),
        )
        return cls(
            db,
            keyring,
            threshold=settings.threshold,
            threshold_1n=settings.threshold_1n,
            margin_1n=settings.margin_1n,
            pool=pool,
            replay=replay,
        )

    async def start(self) -> None:
        """Load templates and frame hashes, start the workers (off the loop: about 1 s)."""
        await self.reload()
        if self.replay is not None:
            await self.replay.load()
        await asyncio.to_thread(self.pool.start)

    async def close(self) -> None:
        if self._persisting:
            await asyncio.gather(*self._persisting, return_exceptions=True)
        await asyncio.to_thread(self.pool.close)

    def _persist_later(self, device_id: str, msg_id: str, h: bytes, person_id: str | None) -> None:
        """The frame's hash is claimed in memory at once (a replay in the next millisecond is
        caught); writing it to the store, for after a restart, is kept off the punch's path.
        A crash in between forgets that one hash."""
        assert self.replay is not None
        task = asyncio.create_task(self.replay.persist(device_id, msg_id, h, person_id))
        self._persisting.add(task)
        task.add_done_callback(self._persisted)

    def _persisted(self, task: asyncio.Task[None]) -> None:
        self._persisting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("could not store a frame hash: %s", task.exception())

    async def reload(self) -> bool:
        """Rebuild the gallery when the templates changed (here or in another process)."""
        version = await self.templates.version()
        if self._loaded and version == self._version:
            return False
        loaded = await self.templates.load()
        self.gallery = Gallery.from_templates(loaded.templates)
        self.damaged = loaded.damaged
        self._version = version
        self._loaded = True
        log.info(
            "face gallery: %d templates of %d people (%d damaged)",
            len(self.gallery),
            self.gallery.people,
            len(self.damaged),
        )
        return True

    def prefetch(self, device_id: str, msg_id: str, jpeg: bytes) -> None:
        """Start analysing a frame as soon as it arrives, before its punch asks for it: the
        frame comes just before the punch, and the encoding is most of the punch's latency.
        A frame whose punch never comes is forgotten after a while."""
        key = (device_id, msg_id)
        if key in self._early or len(self._early) >= _MAX_EARLY:
            return
        task = asyncio.create_task(self.pool.analyse(jpeg))
        self._early[key] = task
        loop = asyncio.get_running_loop()
        task.add_done_callback(lambda t: loop.call_later(_EARLY_TTL_S, self._forget, key, t))

    def _forget(self, key: tuple[str, str], task: asyncio.Task[Analysis]) -> None:
        if self._early.get(key) is task:
            del self._early[key]
        if not task.cancelled():
            task.exception()  # retrieved: an unused busy or failed analysis is not an error

    def has_frame(self, device_id: str, msg_id: str) -> bool:
        """Whether :meth:`prefetch` already has this punch's frame."""
        return (device_id, msg_id) in self._early

    async def check(
        self, device_id: str, msg_id: str, jpeg: bytes | None, claimed_person: Person | None
    ) -> FaceResult:
        """``jpeg`` may be None when the frame was handed to :meth:`prefetch`."""
        early = self._early.pop((device_id, msg_id), None)
        try:
            if early is not None:
                analysis = await early
            elif jpeg is None:
                return FaceResult(
                    False, ReasonCode.FACE_NOT_FOUND, claimed_person, detail="no frame"
                )
            else:
                analysis = await self.pool.analyse(jpeg)
        except FaceBusyError as exc:
            return FaceResult(
                False, ReasonCode.BUSY, claimed_person, detail=exc.message, retry_s=exc.retry_s
            )
        if not analysis.ok:
            return FaceResult(False, analysis.reason, claimed_person, detail=analysis.detail)
        assert analysis.encoding is not None
        assert analysis.phash is not None
        if self.replay is not None:
            hit = self.replay.check_and_claim(device_id, msg_id, analysis.phash)
            if hit is not None:
                log.warning(
                    "frame of %s/%s repeats the frame of %s/%s (%d bits apart)",
                    device_id,
                    msg_id,
                    hit.device_id,
                    hit.msg_id,
                    hit.distance,
                )
                return FaceResult(
                    False,
                    ReasonCode.FRAME_REPLAYED,
                    claimed_person,
                    detail=f"same frame as {hit.device_id}/{hit.msg_id}",
                    replay_of=hit,
                )
        await self.reload()
        if claimed_person is not None:
            result = self._one_to_one(claimed_person, analysis.encoding)
        else:
            result = await self._one_to_many(analysis.encoding)
        if self.replay is not None:
            self._persist_later(device_id, msg_id, analysis.phash, result.person_id)
        return result

    def _one_to_one(self, person: Person, encoding: npt.NDArray[np.float64]) -> FaceResult:
        if not self.gallery.has(person.person_id):
            return FaceResult(
                False,
                ReasonCode.FACE_NOT_ENROLLED,
                person,
                person.person_id,
                detail=f"no face enrolled for {person.person_id}",
            )
        distance = self.gallery.verify(person.person_id, encoding)
        if distance <= self.threshold:
            return FaceResult(True, ReasonCode.OK, person, person.person_id, distance)
        return FaceResult(
            False,
            ReasonCode.FACE_MISMATCH,
            person,
            person.person_id,
            distance,
            detail=f"distance {distance:.3f} > {self.threshold:.3f}",
        )

    async def _one_to_many(self, encoding: npt.NDArray[np.float64]) -> FaceResult:
        match = self.gallery.identify(encoding, threshold=self.threshold_1n, margin=self.margin_1n)
        if match.person_id is None:
            detail = (
                "no enrolled faces"
                if match.best_person is None
                else f"closest {match.best_person} at {match.distance:.3f}, next person at "
                f"{match.second_distance:.3f}"
            )
            return FaceResult(
                False, ReasonCode.FACE_UNKNOWN, distance=match.distance, detail=detail
            )
        person = await _load_person(self._db, match.person_id)
        if person is None:
            return FaceResult(
                False,
                ReasonCode.UNKNOWN_CREDENTIAL,
                None,
                match.person_id,
                match.distance,
                detail=f"{match.person_id} has a face template but is not in the roster",
            )
        return FaceResult(True, ReasonCode.OK, person, person.person_id, match.distance)

    async def enroll(
        self,
        person_id: str,
        photos: Sequence[bytes],
        *,
        source: str = "cli",
        replace: bool = False,
    ) -> EnrollResult:
        """Encode each photo (quality gates apply: one clear, large enough face) and store the
        good ones. The bridge calls this with the roster's photos and ``source="roster",
        replace=True``, so a re-sync replaces that person's roster templates."""
        analyses = await asyncio.gather(*(self._analyse_waiting(p) for p in photos))
        result = await _store(self.templates, person_id, analyses, source, replace)
        await self.reload()
        return result

    async def _analyse_waiting(self, photo: bytes) -> Analysis:
        # Enrolment is not at the door: wait for room in the pool instead of answering busy.
        while True:
            try:
                return await self.pool.analyse(photo)
            except FaceBusyError as exc:
                await asyncio.sleep(min(exc.retry_s, 0.5))


async def _store(
    store: TemplateStore,
    person_id: str,
    analyses: Sequence[Analysis],
    source: str,
    replace: bool,
) -> EnrollResult:
    good = [a.encoding for a in analyses if a.ok and a.encoding is not None]
    rejected = [PhotoOutcome(i, a.reason, a.detail) for i, a in enumerate(analyses) if not a.ok]
    ids = await store.add(person_id, good, source=source, replace=replace) if good else []
    return EnrollResult(person_id, ids, rejected)


async def enroll_photos(
    db: aiosqlite.Connection,
    keys: bytes | Keyring,
    person_id: str,
    photos: Sequence[bytes],
    *,
    source: str = "roster",
    replace: bool = True,
    limits: QualityLimits | None = None,
) -> EnrollResult:
    """Enrol without a running verifier (the bridge in its own process, the CLI): photos are
    encoded one at a time in a thread, and a gateway's verifier picks the change up through the
    templates version."""
    from gateway.verify.face.image import analyse

    lim = limits or QualityLimits()
    analyses = [await asyncio.to_thread(analyse, p, lim) for p in photos]
    return await _store(TemplateStore(db, keys), person_id, analyses, source, replace)


async def _load_person(db: aiosqlite.Connection, person_id: str) -> Person | None:
    async with db.execute(
        "SELECT person_id, name, card, employee_no, department, active FROM people"
        " WHERE person_id = ?",
        (person_id,),
    ) as cur:
        r = await cur.fetchone()
    return Person(r[0], r[1], r[2], r[3], r[4], bool(r[5])) if r else None
