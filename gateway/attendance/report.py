"""The daily attendance report (考勤日报): for one local date, per team, a CSV a manager opens in
a spreadsheet and a PNG chart of who came when.

A person's day is their shift instance on that date (a night shift's morning clock-out belongs
to the evening it started). The report is computed from the stored punches with the same
:class:`~gateway.attendance.policy.Policy` the terminal's answer came from, so the two cannot
disagree, and a change of shift settings applies to reports of past days too (regenerate them
to see it).

CSV files are UTF-8 with a byte-order mark: spreadsheet programs then read Chinese names right.
Teams are the roster's departments; people without one are under ``no-team``.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aiosqlite

from devices.protocol.reasons import ReasonCode
from gateway.attendance.leave import leave_between
from gateway.attendance.policy import Policy, whole_minutes
from gateway.attendance.store import PunchRow, punches_between
from gateway.store.roster import Person, load_people

NO_TEAM = "no-team"
CSV_COLUMNS = (
    "date",
    "site",
    "team",
    "person_id",
    "name",
    "employee_no",
    "shift",
    "shift_start",
    "shift_end",
    "clock_in",
    "clock_out",
    "status",
    "late_min",
    "early_min",
    "punches",
    "refused",
    "outside_fence",
    "leave",
)
# Day statuses; a worked day may combine several, joined with "+" (e.g. "late+left_early").
ON_TIME, LATE, LEFT_EARLY = "on_time", "late", "left_early"
NO_CLOCK_IN, NO_CLOCK_OUT = "no_clock_in", "no_clock_out"
ABSENT, ON_LEAVE, REST_DAY, NO_SHIFT = "absent", "on_leave", "rest_day", "no_shift"
# Refusals that are not a person's attempt at all: a repeat is answered, not refused.
_NOT_REFUSALS = {ReasonCode.REPEAT_PUNCH.value, ReasonCode.DUPLICATE.value}


@dataclass(frozen=True, slots=True)
class DaySummary:
    person: Person
    team: str
    day: dt.date
    status: str
    shift: str = ""
    shift_start: str = ""
    shift_end: str = ""
    clock_in_ms: int | None = None
    clock_out_ms: int | None = None
    late_min: int = 0
    early_min: int = 0
    punches: int = 0
    refused: int = 0
    outside_fence: int = 0
    leave: str | None = None  # the kind of approved leave, "" when the backend gave none
    statuses: tuple[str, ...] = field(default=())


def summarise_day(
    policy: Policy,
    person: Person,
    day: dt.date,
    punches: Sequence[PunchRow],
    *,
    leave: str | None = None,
    now_ms: int | None = None,
) -> DaySummary:
    """One person's day from their punches (any span: those of other days are ignored)."""
    team = person.department or NO_TEAM
    inst = policy.instance_on(person, day)

    def ours(ts: int) -> bool:
        if inst is not None:
            found = policy.instance_for(person, ts)
            return found is not None and found.day == day and found.shift == inst.shift
        return policy.local_day(ts) == day and policy.instance_for(person, ts) is None

    mine = [p for p in punches if p.person_id == person.person_id and ours(p.ts_ms)]
    accepted = sorted(p.ts_ms for p in mine if p.accepted)
    refused = [p for p in mine if not p.accepted and p.reason not in _NOT_REFUSALS]
    outside = sum(1 for p in refused if p.reason == ReasonCode.OUTSIDE_GEOFENCE.value)

    def summary(status: str, *statuses: str, **rest: object) -> DaySummary:
        return DaySummary(
            person,
            team,
            day,
            status,
            shift=inst.shift.name if inst else "",
            shift_start=inst.shift.start.strftime("%H:%M") if inst else "",
            shift_end=inst.shift.end.strftime("%H:%M") if inst else "",
            punches=len(accepted),
            refused=len(refused),
            outside_fence=outside,
            leave=leave,
            statuses=statuses or (status,),
            **rest,  # type: ignore[arg-type]
        )

    if inst is None:
        status = NO_SHIFT if accepted else (ON_LEAVE if leave is not None else REST_DAY)
        return summary(
            status,
            clock_in_ms=accepted[0] if accepted else None,
            clock_out_ms=accepted[-1] if len(accepted) > 1 else None,
        )
    if not accepted:
        return summary(ON_LEAVE if leave is not None else ABSENT)
    clock_in = accepted[0] if accepted[0] <= inst.midpoint_ms else None
    rest = accepted[1:] if clock_in is not None else accepted
    clock_out = rest[-1] if rest else None
    parts: list[str] = []
    late = early = 0
    if clock_in is None:
        parts.append(NO_CLOCK_IN)
    else:
        late_ms = clock_in - inst.start_ms
        if late_ms > inst.shift.grace_in_min * 60_000:
            late = whole_minutes(late_ms)
            parts.append(LATE)
    if clock_out is None:
        if now_ms is None or now_ms >= inst.end_ms:
            parts.append(NO_CLOCK_OUT)
    else:
        early_ms = inst.end_ms - clock_out
        if early_ms > inst.shift.grace_out_min * 60_000:
            early = whole_minutes(early_ms)
            parts.append(LEFT_EARLY)
    statuses = tuple(parts) or (ON_TIME,)
    return summary(
        "+".join(statuses),
        *statuses,
        clock_in_ms=clock_in,
        clock_out_ms=clock_out,
        late_min=late,
        early_min=early,
    )


async def daily_summaries(
    db: aiosqlite.Connection, policy: Policy, day: dt.date, *, now_ms: int | None = None
) -> dict[str, list[DaySummary]]:
    """Team -> each person's summary for local ``day``: active people, and anyone who punched."""
    start, _ = policy.day_bounds_ms(day - dt.timedelta(days=1))
    _, end = policy.day_bounds_ms(day + dt.timedelta(days=1))
    punches = await punches_between(db, start, end)
    people = {p.person_id: p for p in await load_people(db)}
    leave = await leave_between(db, day, day)
    who = {pid for pid, p in people.items() if p.active} | {
        p.person_id for p in punches if p.person_id in people
    }
    by_person: dict[str, list[PunchRow]] = {}
    for p in punches:
        by_person.setdefault(p.person_id, []).append(p)
    teams: dict[str, list[DaySummary]] = {}
    for pid in sorted(who, key=lambda x: (people[x].department, people[x].name, x)):
        person = people[pid]
        summary = summarise_day(
            policy,
            person,
            day,
            by_person.get(pid, []),
            leave=leave.get(pid, {}).get(day),
            now_ms=now_ms,
        )
        if summary.status == REST_DAY and not person.active:
            continue
        teams.setdefault(summary.team, []).append(summary)
    return teams


def team_slug(team: str) -> str:
    """A file-name-safe form of a team name; Chinese letters stay (``\\w`` is Unicode)."""
    slug = re.sub(r"[^\w-]+", "_", team).strip("_")
    return slug[:64] or NO_TEAM


def write_csv(path: Path, policy: Policy, site: str, rows: Iterable[DaySummary]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(CSV_COLUMNS)
        for r in rows:
            out.writerow(
                [
                    r.day.isoformat(),
                    site,
                    r.team,
                    r.person.person_id,
                    r.person.name,
                    r.person.employee_no or "",
                    r.shift,
                    r.shift_start,
                    r.shift_end,
                    _clock(policy, r.clock_in_ms, r.day),
                    _clock(policy, r.clock_out_ms, r.day),
                    r.status,
                    r.late_min,
                    r.early_min,
                    r.punches,
                    r.refused,
                    r.outside_fence,
                    "" if r.leave is None else (r.leave or "yes"),
                ]
            )


def _clock(policy: Policy, ts: int | None, day: dt.date) -> str:
    """Local HH:MM, with "+1" when it falls on the next day (a night shift's clock-out)."""
    if ts is None:
        return ""
    local = policy.local(ts)
    shift = (local.date() - day).days
    return local.strftime("%H:%M") + (f" ({shift:+d})" if shift else "")


_COLOURS = {
    ON_TIME: "#2e7d32",
    LATE: "#ef6c00",
    LEFT_EARLY: "#f9a825",
    NO_CLOCK_IN: "#8e24aa",
    NO_CLOCK_OUT: "#8e24aa",
    NO_SHIFT: "#1565c0",
}


def _cjk_font() -> str | None:
    """A font with Chinese glyphs if the machine has one (names are then drawn as they are)."""
    from matplotlib import font_manager

    wanted = (
        "Noto Sans CJK",
        "Noto Sans SC",
        "Source Han Sans",
        "WenQuanYi",
        "SimHei",
        "Droid Sans Fallback",
    )
    for font in font_manager.fontManager.ttflist:
        if any(w in font.name for w in wanted):
            return str(font.name)
    return None


def _label(person: Person, cjk: bool) -> str:
    if cjk or person.name.isascii():
        return person.name
    return person.employee_no or person.person_id  # no glyphs for the name on this machine


def write_chart(
    path: Path, policy: Policy, site: str, team: str, day: dt.date, rows: Sequence[DaySummary]
) -> None:
    """One horizontal bar per person from clock-in to clock-out, coloured by the day's status,
    over the shift's start and end; absent and leave days are written in the bar's place."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import Patch

    cjk_font = _cjk_font()
    font = FontProperties(family=cjk_font) if cjk_font else None
    day_start, _ = policy.day_bounds_ms(day)

    def hours(ts: int) -> float:
        return (ts - day_start) / 3_600_000

    fig = Figure(figsize=(9, 1.2 + 0.4 * max(1, len(rows))), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    lo, hi = 6.0, 20.0
    for y, r in enumerate(rows):
        inst = policy.instance_on(r.person, day)
        if inst is not None:
            s, e = hours(inst.start_ms), hours(inst.end_ms)
            ax.plot([s, s], [y - 0.45, y + 0.45], color="#555555", linewidth=1, linestyle="--")
            ax.plot([e, e], [y - 0.45, y + 0.45], color="#555555", linewidth=1, linestyle="--")
            lo, hi = min(lo, s - 1), max(hi, e + 1)
        start = r.clock_in_ms if r.clock_in_ms is not None else r.clock_out_ms
        if start is None:
            label = {ABSENT: "absent", ON_LEAVE: "on leave", REST_DAY: "rest day"}.get(
                r.status, r.status
            )
            ax.text(lo + 0.2, y, label, va="center", fontsize=9, color="#b71c1c")
            continue
        end = r.clock_out_ms if r.clock_out_ms is not None else start + 300_000
        colour = _COLOURS.get(r.statuses[-1] if r.statuses else ON_TIME, "#616161")
        ax.barh(y, hours(end) - hours(start), left=hours(start), height=0.6, color=colour)
        lo, hi = min(lo, hours(start) - 1), max(hi, hours(end) + 1)
    ax.set_yticks(
        range(len(rows)),
        [_label(r.person, cjk_font is not None) for r in rows],
        fontproperties=font,
    )
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(lo, hi)
    ticks = range(int(lo), int(hi) + 1)
    ax.set_xticks(list(ticks), [f"{h % 24:02d}:00" for h in ticks], fontsize=8)
    counts: dict[str, int] = {}
    for r in rows:
        for st in r.statuses:
            counts[st] = counts.get(st, 0) + 1
    tally = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(counts.items()))
    shown_team = (
        team if cjk_font or team.isascii() else team_slug(team).encode("ascii", "replace").decode()
    )
    ax.set_title(
        f"{site} / {shown_team}: {day.isoformat()} ({policy.tz.key})\n{tally}",
        fontsize=10,
        fontproperties=font,
    )
    ax.legend(
        handles=[
            Patch(color=c, label=k.replace("_", " "))
            for k, c in _COLOURS.items()
            if k != NO_CLOCK_OUT
        ],
        fontsize=7,
        loc="lower right",
    )
    ax.grid(axis="x", color="#dddddd")
    fig.tight_layout()
    fig.savefig(path, format="png")


def write_daily_report(
    out_dir: Path,
    policy: Policy,
    site: str,
    day: dt.date,
    teams: Mapping[str, Sequence[DaySummary]],
) -> list[Path]:
    """``{day}_{site}_{team}.csv`` and ``.png`` per team; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    used: set[str] = set()
    for team, rows in sorted(teams.items()):
        slug = team_slug(team)
        n = 1
        while slug in used:  # "R&D" and "R D" both make "R_D": keep both reports
            n += 1
            slug = f"{team_slug(team)}-{n}"
        used.add(slug)
        stem = f"{day.isoformat()}_{site}_{slug}"
        csv_path, png_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.png"
        write_csv(csv_path, policy, site, rows)
        write_chart(png_path, policy, site, team, day, rows)
        written += [csv_path, png_path]
    return written
