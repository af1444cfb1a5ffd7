"""Shift policy: on time, late, early, grace, the repeat window, leave, teams, night shifts and
daylight saving, each as a person at the door would notice it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from devices.protocol.reasons import ReasonCode
from gateway.attendance import Direction, Policy, PunchStatus, Shift
from gateway.config import load_settings
from gateway.store.roster import Person

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
ALICE = Person("p1", "Alice", card="C1", department="sales")
OPS = Person("p2", "Bo", card="C2", department="ops")
DAY = Shift("day", dt.time(9), dt.time(18), grace_in_min=5, grace_out_min=0)
NIGHT = Shift("night", dt.time(22), dt.time(6), team="ops", days=frozenset(range(1, 8)))


def at(tz: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int, s: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, s, tzinfo=tz).timestamp() * 1000)


def utc(y: int, mo: int, d: int, h: int, mi: int) -> int:
    return at(ZoneInfo("UTC"), y, mo, d, h, mi)


@pytest.fixture
def policy() -> Policy:
    return Policy(SH, [DAY, NIGHT], repeat_window_s=120)


def test_on_time_and_within_grace(policy: Policy) -> None:
    c = policy.classify(ALICE, at(SH, 2026, 3, 2, 8, 57))
    assert (c.status, c.direction, c.text) == (
        PunchStatus.ON_TIME,
        Direction.IN,
        "Clocked in 08:57",
    )
    assert (c.record, c.accepted, c.reason) == (True, True, ReasonCode.OK)
    c = policy.classify(ALICE, at(SH, 2026, 3, 2, 9, 5, 0))
    assert c.status is PunchStatus.ON_TIME, "exactly at the end of the grace is on time"


def test_late_after_grace_counts_from_shift_start(policy: Policy) -> None:
    c = policy.classify(ALICE, at(SH, 2026, 3, 2, 9, 5, 1))
    assert (c.status, c.minutes) == (PunchStatus.LATE, 5)
    c = policy.classify(ALICE, at(SH, 2026, 3, 2, 9, 42))
    assert (c.status, c.minutes, c.text) == (PunchStatus.LATE, 42, "Late 42 min: clocked in 09:42")


def test_left_early_and_on_time_clock_out(policy: Policy) -> None:
    morning = at(SH, 2026, 3, 2, 8, 55)
    c = policy.classify(ALICE, at(SH, 2026, 3, 2, 17, 30), [morning])
    assert (c.status, c.direction, c.minutes) == (PunchStatus.LEFT_EARLY, Direction.OUT, 30)
    assert c.text == "Left 30 min early: out 17:30"
    c = policy.classify(ALICE, at(SH, 2026, 3, 2, 18, 0), [morning])
    assert (c.status, c.text) == (PunchStatus.ON_TIME, "Clocked out 18:00")


def test_first_punch_after_midday_is_a_clock_out(policy: Policy) -> None:
    c = policy.classify(ALICE, at(SH, 2026, 3, 2, 18, 10))
    assert (c.direction, c.status) == (Direction.OUT, PunchStatus.ON_TIME)


def test_repeat_within_the_window_is_answered_not_recorded(policy: Policy) -> None:
    first = at(SH, 2026, 3, 2, 8, 59, 30)
    c = policy.classify(ALICE, first + 45_000, [first])
    assert (c.status, c.record, c.accepted) == (PunchStatus.REPEAT, False, True)
    assert (c.reason, c.text) == (ReasonCode.REPEAT_PUNCH, "Already recorded at 08:59")
    later = policy.classify(ALICE, first + 121_000, [first])
    assert (later.record, later.direction) == (True, Direction.OUT), "after the window: recorded"


def test_repeat_window_zero_records_every_punch() -> None:
    first = at(SH, 2026, 3, 2, 9, 0)
    c = Policy(SH, [DAY], repeat_window_s=0).classify(ALICE, first + 1000, [first])
    assert c.record


def test_refusal_is_classified_and_says_why(policy: Policy) -> None:
    c = policy.classify(
        ALICE,
        at(SH, 2026, 3, 2, 9, 0),
        refusal=ReasonCode.OUTSIDE_GEOFENCE,
        refusal_text="Outside the work area",
    )
    assert (c.status, c.accepted, c.text) == (
        PunchStatus.OUTSIDE_FENCE,
        False,
        "Outside the work area",
    )
    c = policy.classify(ALICE, at(SH, 2026, 3, 2, 9, 0), refusal=ReasonCode.GPS_MOCK)
    assert (c.status, c.reason) == (PunchStatus.REFUSED, ReasonCode.GPS_MOCK)


def test_leave_day_is_flagged(policy: Policy) -> None:
    c = policy.classify(ALICE, at(SH, 2026, 3, 2, 10, 0), leave_days={dt.date(2026, 3, 2)})
    assert c.on_leave
    assert c.text.endswith("on leave today")
    assert not policy.classify(
        ALICE, at(SH, 2026, 3, 3, 10, 0), leave_days={dt.date(2026, 3, 2)}
    ).on_leave


def test_weekend_has_no_shift(policy: Policy) -> None:
    c = policy.classify(ALICE, at(SH, 2026, 3, 7, 10, 0))  # a Saturday
    assert (c.status, c.accepted, c.shift) == (PunchStatus.NO_SHIFT, True, None)


def test_team_shift_overrides_the_default(policy: Policy) -> None:
    c = policy.classify(OPS, at(SH, 2026, 3, 2, 21, 58))
    assert (c.shift, c.status, c.direction) == ("night", PunchStatus.ON_TIME, Direction.IN)


def test_night_shift_clock_out_belongs_to_the_evening_it_started(policy: Policy) -> None:
    evening = at(SH, 2026, 3, 2, 22, 3)
    c = policy.classify(OPS, at(SH, 2026, 3, 3, 5, 40), [evening])
    assert (c.day, c.direction, c.status, c.minutes) == (
        dt.date(2026, 3, 2),
        Direction.OUT,
        PunchStatus.LEFT_EARLY,
        20,
    )


def test_dst_the_same_utc_instant_is_on_time_before_and_late_after_the_change() -> None:
    # Berlin moves to summer time on Sunday 2025-03-30: 08:03 UTC is 09:03 before, 10:03 after.
    policy = Policy(BERLIN, [DAY])
    before = policy.classify(ALICE, utc(2025, 3, 28, 8, 3))
    after = policy.classify(ALICE, utc(2025, 3, 31, 8, 3))
    assert (before.status, before.local_time) == (PunchStatus.ON_TIME, "09:03")
    assert (after.status, after.minutes, after.local_time) == (PunchStatus.LATE, 63, "10:03")


def test_dst_night_shift_across_the_change_ends_at_the_wall_clock_time() -> None:
    # 22:00 CET Saturday to 06:00 CEST Sunday is 7 hours: the shift ends at 04:00 UTC.
    policy = Policy(BERLIN, [NIGHT])
    start = utc(2025, 3, 29, 21, 0)
    on_time = policy.classify(OPS, utc(2025, 3, 30, 4, 0), [start])
    early = policy.classify(OPS, utc(2025, 3, 30, 3, 30), [start])
    assert (on_time.status, on_time.local_time) == (PunchStatus.ON_TIME, "06:00")
    assert (early.status, early.minutes) == (PunchStatus.LEFT_EARLY, 30)
    inst = policy.instance_on(OPS, dt.date(2025, 3, 29))
    assert inst is not None
    assert inst.end_ms - inst.start_ms == 7 * 3_600_000


def test_dst_autumn_day_has_25_hours() -> None:
    start, end = Policy(BERLIN, [DAY]).day_bounds_ms(dt.date(2025, 10, 26))
    assert end - start == 25 * 3_600_000


def test_policy_from_settings_reads_timezone_and_team_shifts() -> None:
    settings = load_settings(
        attendance={
            "timezone": "Europe/Berlin",
            "repeat_window_s": 30,
            "shifts": [
                {"name": "day", "start": "08:30", "end": "17:00", "grace_in_min": 0},
                {"name": "late", "team": "ops", "start": "12:00", "end": "20:00"},
            ],
        }
    )
    policy = Policy.from_settings(settings.attendance)
    assert policy.tz.key == "Europe/Berlin"
    assert policy.repeat_window_ms == 30_000
    assert policy.classify(ALICE, at(BERLIN, 2026, 3, 2, 8, 31)).status is PunchStatus.LATE
    assert policy.classify(OPS, at(BERLIN, 2026, 3, 2, 11, 50)).shift == "late"


def test_verdict_says_what_the_punch_meant_for_the_terminal_to_translate(policy: Policy) -> None:
    morning = at(SH, 2026, 3, 2, 9, 17)
    late = policy.classify(ALICE, morning).verdict(ALICE)
    assert (late.cls, late.minutes, late.at, late.leave) == ("late", 17, "09:17", None)
    assert late.to_wire() == {
        "ok": True,
        "name": "Alice",
        "text": "Late 17 min: clocked in 09:17",
        "cls": "late",
        "min": 17,
        "at": "09:17",
    }
    early = policy.classify(ALICE, at(SH, 2026, 3, 2, 17, 30), [morning]).verdict(ALICE)
    assert (early.cls, early.minutes, early.at) == ("left_early", 30, "17:30")
    out = policy.classify(ALICE, at(SH, 2026, 3, 2, 18, 1), [morning]).verdict(ALICE)
    assert (out.cls, out.minutes, out.at) == ("out", None, "18:01")
    repeat = policy.classify(ALICE, morning + 50_000, [morning]).verdict(ALICE)
    assert (repeat.ok, repeat.cls, repeat.at) == (True, "repeat", "09:17"), "the first punch's time"
    leave = policy.classify(
        ALICE, at(SH, 2026, 3, 2, 8, 58), leave_days={dt.date(2026, 3, 2)}
    ).verdict(ALICE)
    assert (leave.cls, leave.leave) == ("in", True)
    weekend = policy.classify(ALICE, at(SH, 2026, 3, 7, 10, 0)).verdict(ALICE)
    assert weekend.cls == "no_shift"
    refused = policy.classify(
        ALICE, at(SH, 2026, 3, 2, 9, 0), refusal=ReasonCode.GPS_MOCK, refusal_text="Mock location"
    ).verdict(ALICE)
    assert (refused.ok, refused.cls) == (False, None), "a refusal is said by its reason code"
