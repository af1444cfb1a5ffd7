"""The attendance policy: which shift a punch belongs to, whether it is on time, late or early,
a repeat, or on a day of leave, and what the terminal says about it.

Everything is decided in the site's time zone (``attendance.timezone``) and computed in UTC
milliseconds: a shift "09:00-18:00" is turned into two instants per day with ``zoneinfo``, so a
daylight-saving change moves the instants, never the local times, and a night shift across the
change is as long as the clock on the wall says (7 h on the spring night, 9 h in the autumn).
A wall time that does not exist (02:30 on the spring night) is read with the offset before the
change, as ``zoneinfo`` does with ``fold=0``.

Which punch is a clock-in: the first recorded punch of a shift instance, if it comes before
the middle of the shift; every later one (or a first one after the middle) is a clock-out,
and the day's last clock-out is the one the report keeps. This is what a person expects from
a DingTalk-style terminal: punch once in the morning, once in the evening, as often as you like
in between.

The policy is pure (no I/O); the ingest path feeds it from memory and the store
(:class:`gateway.attendance.recent.RecentPunches`), :func:`gateway.attendance.store.classify_punch`
from the store alone.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from devices.protocol.messages import Verdict
from devices.protocol.reasons import ReasonCode
from gateway.config import AttendanceSettings, ShiftSettings
from gateway.store.roster import Person

_MIN_MS = 60_000
# February 1972: from then on every zone's UTC offset is a whole number of minutes (Monrovia's
# -0:44:30, until 7 January 1972, was the last to go), so the local minute of an instant is
# that of its UTC minute.
_WHOLE_MINUTE_OFFSETS_MS = 65_750_400_000


class PunchStatus(enum.StrEnum):
    ON_TIME = "on_time"
    LATE = "late"
    LEFT_EARLY = "left_early"
    NO_SHIFT = "no_shift"  # accepted, but no shift of the person's is open now
    OUTSIDE_FENCE = "outside_fence"
    REFUSED = "refused"
    REPEAT = "repeat"  # "already recorded": nothing new is stored


class Direction(enum.StrEnum):
    IN = "in"
    OUT = "out"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Shift:
    name: str
    start: dt.time
    end: dt.time
    team: str = ""
    days: frozenset[int] = frozenset({1, 2, 3, 4, 5})
    grace_in_min: int = 5
    grace_out_min: int = 0
    opens_min: int = 240
    closes_min: int = 480

    @classmethod
    def from_settings(cls, s: ShiftSettings) -> Shift:
        return cls(
            s.name,
            s.start,
            s.end,
            s.team,
            frozenset(s.days),
            s.grace_in_min,
            s.grace_out_min,
            s.opens_min,
            s.closes_min,
        )


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    """One shift on one day (``day`` is the local date the shift starts), in UTC ms."""

    shift: Shift
    day: dt.date
    start_ms: int
    end_ms: int

    @property
    def opens_ms(self) -> int:
        return self.start_ms - self.shift.opens_min * _MIN_MS

    @property
    def closes_ms(self) -> int:
        return self.end_ms + self.shift.closes_min * _MIN_MS

    @property
    def midpoint_ms(self) -> int:
        return (self.start_ms + self.end_ms) // 2

    def window(self, ts_ms: int) -> bool:
        return self.opens_ms <= ts_ms <= self.closes_ms


@dataclass(frozen=True, slots=True)
class Classification:
    """What a punch means. ``record`` False: answer, but store nothing new (a repeat).
    ``text`` is the verdict's text on the terminal; ``minutes`` is how late or how early."""

    status: PunchStatus
    direction: Direction
    record: bool
    accepted: bool
    reason: ReasonCode
    text: str
    local_time: str
    minutes: int = 0
    shift: str | None = None
    day: dt.date | None = None
    on_leave: bool = False
    first_at: str | None = None  # a repeat: local time of the punch it repeats

    def verdict(self, person: Person | None) -> Verdict:
        """The ack's verdict: the English text, and for a punch that counted, what it meant in
        fields a terminal puts into its own language (protocol: verdict ``cls``)."""
        name = person.name if person else None
        cls = _VERDICT_CLASS.get((self.status, self.direction))
        if cls is None or not self.accepted:
            return Verdict(ok=self.accepted, text=self.text, name=name)
        late_or_early = self.status in (PunchStatus.LATE, PunchStatus.LEFT_EARLY)
        return Verdict(
            ok=True,
            text=self.text,
            name=name,
            cls=cls,
            minutes=self.minutes if late_or_early else None,
            at=self.first_at or self.local_time,
            leave=True if self.on_leave else None,
        )


_VERDICT_CLASS = {
    (PunchStatus.ON_TIME, Direction.IN): "in",
    (PunchStatus.ON_TIME, Direction.OUT): "out",
    (PunchStatus.LATE, Direction.IN): "late",
    (PunchStatus.LEFT_EARLY, Direction.OUT): "left_early",
    (PunchStatus.REPEAT, Direction.NONE): "repeat",
    (PunchStatus.NO_SHIFT, Direction.NONE): "no_shift",
}


class Policy:
    def __init__(
        self, tz: ZoneInfo | str, shifts: Sequence[Shift], *, repeat_window_s: int = 120
    ) -> None:
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self.shifts = tuple(shifts)
        self.repeat_window_ms = repeat_window_s * 1000
        # Memos for the ingest path, which classifies every punch: a shift's instance on a day
        # and a team's shifts never change for one policy (a new rule set is a new Policy).
        self._instances: dict[tuple[Shift, dt.date], ShiftInstance | None] = {}
        self._team_shifts: dict[str, tuple[Shift, ...]] = {}
        self._minutes: dict[int, tuple[dt.date, str]] = {}

    @classmethod
    def from_settings(cls, s: AttendanceSettings) -> Policy:
        return cls(
            s.timezone,
            [Shift.from_settings(x) for x in s.shifts],
            repeat_window_s=s.repeat_window_s,
        )

    # -- time ---------------------------------------------------------------------------------

    def local(self, ts_ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ts_ms / 1000, self.tz)

    def local_day(self, ts_ms: int) -> dt.date:
        return self._minute(ts_ms)[0]

    def hhmm(self, ts_ms: int) -> str:
        return self._minute(ts_ms)[1]

    def _minute(self, ts_ms: int) -> tuple[dt.date, str]:
        """The local date and ``HH:MM`` of the minute holding ``ts_ms``, memoised: punches come
        in at about the current minute, and each needs both several times."""
        if ts_ms < _WHOLE_MINUTE_OFFSETS_MS:  # a clock reset to 1970: no memo, exact seconds
            at = self.local(ts_ms)
            return at.date(), at.strftime("%H:%M")
        minute = ts_ms // _MIN_MS
        found = self._minutes.get(minute)
        if found is None:
            at = self.local(minute * _MIN_MS)
            found = (at.date(), at.strftime("%H:%M"))
            if len(self._minutes) > 4096:
                self._minutes.clear()
            self._minutes[minute] = found
        return found

    def to_ms(self, day: dt.date, at: dt.time) -> int:
        return int(dt.datetime.combine(day, at, self.tz).timestamp() * 1000)

    def day_bounds_ms(self, day: dt.date) -> tuple[int, int]:
        """Local midnight to the next local midnight (23 or 25 h on a DST change)."""
        return (
            self.to_ms(day, dt.time(0)),
            self.to_ms(day + dt.timedelta(days=1), dt.time(0)),
        )

    # -- shifts -------------------------------------------------------------------------------

    def shifts_for(self, person: Person) -> tuple[Shift, ...]:
        """The person's team's shifts, or the site's default ones (``team = ""``)."""
        team = person.department
        found = self._team_shifts.get(team)
        if found is None:
            own = tuple(s for s in self.shifts if s.team and s.team == team)
            found = own or tuple(s for s in self.shifts if not s.team)
            self._team_shifts[team] = found
        return found

    def instance_on(self, person: Person, day: dt.date) -> ShiftInstance | None:
        """The person's first shift starting on local ``day``, if they work that day."""
        found = [i for s in self.shifts_for(person) if (i := self._instance(s, day)) is not None]
        return min(found, key=lambda i: i.start_ms) if found else None

    def instance_for(self, person: Person, ts_ms: int) -> ShiftInstance | None:
        """The shift instance whose window holds ``ts_ms``; the nearest one when two do."""
        day = self.local_day(ts_ms)
        candidates = [
            inst
            for d in (day - dt.timedelta(days=1), day, day + dt.timedelta(days=1))
            for s in self.shifts_for(person)
            if (inst := self._instance(s, d)) is not None and inst.window(ts_ms)
        ]
        if not candidates:
            return None

        def distance(i: ShiftInstance) -> int:
            if i.start_ms <= ts_ms <= i.end_ms:
                return 0
            return min(abs(ts_ms - i.start_ms), abs(ts_ms - i.end_ms))

        return min(candidates, key=distance)

    def _instance(self, shift: Shift, day: dt.date) -> ShiftInstance | None:
        key = (shift, day)
        try:
            return self._instances[key]
        except KeyError:
            pass
        inst: ShiftInstance | None = None
        if day.isoweekday() in shift.days:
            end_day = day + dt.timedelta(days=1) if shift.end <= shift.start else day
            inst = ShiftInstance(
                shift, day, self.to_ms(day, shift.start), self.to_ms(end_day, shift.end)
            )
        if len(self._instances) > 4096:  # a long-running gateway sees a new day every day
            self._instances.clear()
        self._instances[key] = inst
        return inst

    # -- punches ------------------------------------------------------------------------------

    def classify(
        self,
        person: Person,
        punch_ms: int,
        previous: Iterable[int] = (),
        *,
        refusal: ReasonCode | None = None,
        refusal_text: str = "",
        leave_days: Collection[dt.date] = (),
    ) -> Classification:
        """Classify one punch.

        ``previous``: when the person's earlier *recorded, accepted* punches happened (UTC ms;
        any order, any span: those outside the shift or the repeat window are ignored).
        ``refusal``: a verifier already refused the punch (GPS, face, ...), with the text to
        show. ``leave_days``: the person's approved leave, local dates.
        """
        at = self.hhmm(punch_ms)
        inst = self.instance_for(person, punch_ms)
        day = inst.day if inst else self.local_day(punch_ms)
        on_leave = day in leave_days
        leave_note = "; on leave today" if on_leave else ""
        shift_name = inst.shift.name if inst else None
        if refusal is not None and refusal is not ReasonCode.OK:
            status = (
                PunchStatus.OUTSIDE_FENCE
                if refusal is ReasonCode.OUTSIDE_GEOFENCE
                else PunchStatus.REFUSED
            )
            text = refusal_text or "Not recorded"
            return Classification(
                status, Direction.NONE, True, False, refusal, text, at, 0, shift_name, day, on_leave
            )
        earlier = sorted(previous)
        if self.repeat_window_ms:
            near = [p for p in earlier if abs(punch_ms - p) < self.repeat_window_ms]
            if near:
                first = min(near)
                return Classification(
                    PunchStatus.REPEAT,
                    Direction.NONE,
                    False,
                    True,
                    ReasonCode.REPEAT_PUNCH,
                    f"Already recorded at {self.hhmm(first)}",
                    at,
                    0,
                    shift_name,
                    day,
                    on_leave,
                    first_at=self.hhmm(first),
                )
        if inst is None:
            return Classification(
                PunchStatus.NO_SHIFT,
                Direction.NONE,
                True,
                True,
                ReasonCode.OK,
                f"Recorded {at} (no shift now){leave_note}",
                at,
                0,
                None,
                day,
                on_leave,
            )
        before = [p for p in earlier if inst.window(p) and p < punch_ms]
        if not before and punch_ms <= inst.midpoint_ms:
            late_ms = punch_ms - inst.start_ms
            if late_ms > inst.shift.grace_in_min * _MIN_MS:
                minutes = whole_minutes(late_ms)
                status, text = PunchStatus.LATE, f"Late {minutes} min: clocked in {at}"
            else:
                minutes, status, text = 0, PunchStatus.ON_TIME, f"Clocked in {at}"
            direction = Direction.IN
        else:
            early_ms = inst.end_ms - punch_ms
            if early_ms > inst.shift.grace_out_min * _MIN_MS:
                minutes = whole_minutes(early_ms)
                status, text = PunchStatus.LEFT_EARLY, f"Left {minutes} min early: out {at}"
            else:
                minutes, status, text = 0, PunchStatus.ON_TIME, f"Clocked out {at}"
            direction = Direction.OUT
        return Classification(
            status,
            direction,
            True,
            True,
            ReasonCode.OK,
            text + leave_note,
            at,
            minutes,
            inst.shift.name,
            inst.day,
            on_leave,
        )


def whole_minutes(ms: int) -> int:
    """Whole minutes late or early, at least 1 once past the grace (5 min 59 s late is 5)."""
    return max(1, ms // _MIN_MS)
