"""The face check as the ingest path calls it: real photos, real store, real encoding processes."""

from __future__ import annotations

import asyncio

import aiosqlite
import cv2
import pytest

from devices.protocol.reasons import ReasonCode
from gateway.verify.face import FaceVerifier, enroll_photos
from gateway.verify.face.pool import EncoderPool
from gateway.verify.face.replay import ReplayGuard
from tests.verify_face.conftest import CHIRAC, MULTI, PEOPLE, PUTIN, SALLEY, jpeg, pixels

PUTIN_P, CHIRAC_P, SALLEY_P = PEOPLE


def make(db: aiosqlite.Connection, key: bytes, pool: EncoderPool) -> FaceVerifier:
    return FaceVerifier(
        db,
        key,
        threshold=0.61,
        threshold_1n=0.57,
        margin_1n=0.08,
        pool=pool,
        replay=ReplayGuard(db, max_bits=24),
    )


@pytest.fixture
async def verifier(db: aiosqlite.Connection, key: bytes, pool: EncoderPool) -> FaceVerifier:
    v = make(db, key, pool)
    await v.start()
    putin = await v.enroll("p-putin", [p.read_bytes() for p in PUTIN[:2]])
    chirac = await v.enroll("p-chirac", [CHIRAC[0].read_bytes()])
    assert (putin.enrolled, chirac.enrolled) == (2, 1)
    return v


async def test_card_and_matching_face_is_accepted(verifier: FaceVerifier) -> None:
    r = await verifier.check("term-1", "m-1", PUTIN[2].read_bytes(), PUTIN_P)
    assert r.ok, r.detail
    assert r.reason is ReasonCode.OK
    assert r.person == PUTIN_P
    assert r.distance is not None
    assert r.distance < 0.61


async def test_card_of_one_person_with_anothers_face_is_refused(verifier: FaceVerifier) -> None:
    r = await verifier.check("term-1", "m-2", CHIRAC[1].read_bytes(), PUTIN_P)
    assert not r.ok
    assert r.reason is ReasonCode.FACE_MISMATCH
    assert r.distance is not None
    assert r.distance > 0.61


async def test_person_without_templates_is_not_enrolled(verifier: FaceVerifier) -> None:
    r = await verifier.check("term-1", "m-3", SALLEY[0].read_bytes(), SALLEY_P)
    assert r.reason is ReasonCode.FACE_NOT_ENROLLED


async def test_face_only_punch_finds_the_person(verifier: FaceVerifier) -> None:
    r = await verifier.check("term-1", "m-4", CHIRAC[1].read_bytes(), None)
    assert r.ok, r.detail
    assert r.person == CHIRAC_P


async def test_face_only_punch_of_a_stranger_is_unknown(verifier: FaceVerifier) -> None:
    r = await verifier.check("term-1", "m-5", SALLEY[1].read_bytes(), None)
    assert r.reason is ReasonCode.FACE_UNKNOWN
    assert r.person is None


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (lambda: jpeg(pixels(PUTIN[2]) * 0), ReasonCode.FACE_TOO_DARK),
        (lambda: MULTI.read_bytes(), ReasonCode.FACE_MULTIPLE),
        (lambda: PUTIN[2].read_bytes()[:900], ReasonCode.IMAGE_CORRUPT),
    ],
    ids=["dark", "several", "corrupt"],
)
async def test_bad_frames_are_refused_with_their_reason(
    verifier: FaceVerifier, frame: object, reason: ReasonCode
) -> None:
    assert callable(frame)
    r = await verifier.check("term-1", "m-6", frame(), PUTIN_P)
    assert not r.ok
    assert r.reason is reason


async def test_enrolment_reports_each_unusable_photo(db: aiosqlite.Connection, key: bytes) -> None:
    photos = [PUTIN[0].read_bytes(), MULTI.read_bytes(), b"not a photo"]
    result = await enroll_photos(db, key, "p-putin", photos, source="roster")
    assert result.enrolled == 1
    assert [(o.index, o.reason) for o in result.rejected] == [
        (1, ReasonCode.FACE_MULTIPLE),
        (2, ReasonCode.IMAGE_CORRUPT),
    ]


async def test_enrolment_elsewhere_reaches_a_running_verifier(
    verifier: FaceVerifier, db: aiosqlite.Connection, key: bytes
) -> None:
    # The bridge (or the CLI) enrols through the store; the gateway's gallery follows.
    await enroll_photos(db, key, "p-salley", [SALLEY[0].read_bytes()], source="roster")
    r = await verifier.check("term-1", "m-7", SALLEY[1].read_bytes(), SALLEY_P)
    assert r.ok, r.detail


async def test_same_frame_for_another_punch_is_a_replay(verifier: FaceVerifier) -> None:
    frame = PUTIN[2].read_bytes()
    first = await verifier.check("term-1", "m-10", frame, PUTIN_P)
    assert first.ok
    again = await verifier.check("term-1", "m-10", frame, PUTIN_P)  # a resend: same punch
    assert again.ok
    other = await verifier.check("term-2", "m-11", frame, PUTIN_P)
    assert other.reason is ReasonCode.FRAME_REPLAYED
    assert other.replay_of is not None
    assert (other.replay_of.device_id, other.replay_of.msg_id) == ("term-1", "m-10")


async def test_reencoded_copy_of_a_frame_is_a_replay(verifier: FaceVerifier) -> None:
    assert (await verifier.check("term-1", "m-20", PUTIN[2].read_bytes(), PUTIN_P)).ok
    copy = cv2.resize(pixels(PUTIN[2]), None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA)
    r = await verifier.check("term-1", "m-21", jpeg(copy, quality=70), PUTIN_P)
    assert r.reason is ReasonCode.FRAME_REPLAYED


async def test_a_different_photo_of_the_same_person_is_not_a_replay(
    verifier: FaceVerifier,
) -> None:
    assert (await verifier.check("term-1", "m-30", CHIRAC[1].read_bytes(), CHIRAC_P)).ok
    assert (await verifier.check("term-1", "m-31", CHIRAC[0].read_bytes(), CHIRAC_P)).ok


async def test_replay_is_remembered_across_a_restart(
    verifier: FaceVerifier, db: aiosqlite.Connection, key: bytes, pool: EncoderPool
) -> None:
    assert (await verifier.check("term-1", "m-40", PUTIN[2].read_bytes(), PUTIN_P)).ok
    restarted = make(db, key, pool)
    await restarted.start()
    r = await restarted.check("term-3", "m-41", PUTIN[2].read_bytes(), PUTIN_P)
    assert r.reason is ReasonCode.FRAME_REPLAYED


async def test_full_queue_answers_busy_with_retry(db: aiosqlite.Connection, key: bytes) -> None:
    small = EncoderPool(workers=1, queue=1, retry_s=3.0, kind="thread")
    v = make(db, key, small)
    await v.start()
    try:
        frames = [PUTIN[2].read_bytes(), CHIRAC[1].read_bytes(), SALLEY[1].read_bytes()]
        results = await asyncio.gather(
            *(v.check("term-1", f"m-5{i}", f, None) for i, f in enumerate(frames))
        )
        busy = [r for r in results if r.reason is ReasonCode.BUSY]
        assert len(busy) == 1, [r.reason for r in results]
        assert busy[0].retry_s == 3.0
        assert busy[0].reason.transient
        assert small.rejected == 1
        # Once the queue drains, the same frame goes through.
        again = await v.check("term-1", "m-52", frames[2], None)
        assert again.reason is not ReasonCode.BUSY
    finally:
        await v.close()
