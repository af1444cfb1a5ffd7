"""The daily report from a real store: CSV rows per team, valid PNG charts, leave and time zones;
and the policy fed from the store as the ingest path will use it."""

from __future__ import annotations

import csv
import datetime as dt
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import png  # type: ignore[import-untyped]
import pytest

from devices.protocol.reasons import ReasonCode
from gateway.attendance import Policy, PunchStatus, Shift
from gateway.attendance.leave import LeaveDay, upsert_leave
from gateway.attendance.report import daily_summaries, write_daily_report
from gateway.attendance.store import classify_punch
from gateway.store import open_database
from gateway.store.records import NewRecord, RecordWriter, SyncState
from gateway.store.roster import Person, upsert_people

SH = ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 3, 2)  # a Monday
PEOPLE = [
    Person("p1", "Alice", "C1", "E001", "sales"),
    Person("p2", "张伟", "C2", "E002", "sales"),
    Person("p3", "Carol", "C3", "E003", "sales"),
    Person("p4", "Dan", "C4", "E004", "ops"),
    Person("p5", "Eve", "C5", "E005", "ops"),
    Person("p6", "Old", "C6", "E006", "ops", active=False),
]
SHIFTS = [
    Shift("day", dt.time(9), dt.time(18)),
    Shift("night", dt.time(22), dt.time(6), team="ops", days=frozenset(range(1, 8))),
]


def ms(d: dt.date, h: int, m: int, tz: ZoneInfo = SH) -> int:
    return int(dt.datetime(d.year, d.month, d.day, h, m, tzinfo=tz).timestamp() * 1000)


async def store_punches(path: Path, punches: list[tuple[str, int, str, str]]) -> None:
    db = await open_database(path)
    try:
        await upsert_people(db, PEOPLE)
        async with RecordWriter(db, max_batch=50, max_pending=100) as writer:
            for n, (pid, ts, status, reason) in enumerate(punches):
                await writer.submit(
                    NewRecord(
                        "term-1",
                        f"m{n}",
                        n,
                        "punch",
                        ts,
                        ts,
                        pid,
                        pid,
                        {"card": pid},
                        status,
                        reason,
                        {"ok": status == "accepted", "text": ""},
                        SyncState.PENDING if status == "accepted" else SyncState.LOCAL,
                    )
                )
        await upsert_leave(
            db, [LeaveDay("p3", DAY, "annual"), LeaveDay("p5", DAY, "sick", approved=False)]
        )
    finally:
        await db.close()


PUNCHES = [
    ("p1", ms(DAY, 8, 55), "accepted", "ok"),
    ("p1", ms(DAY, 18, 5), "accepted", "ok"),
    ("p2", ms(DAY, 8, 40), "rejected", "outside_geofence"),
    ("p2", ms(DAY, 9, 12), "accepted", "ok"),
    ("p2", ms(DAY, 17, 30), "accepted", "ok"),
    ("p4", ms(DAY, 21, 50), "accepted", "ok"),
    ("p4", ms(DAY + dt.timedelta(days=1), 6, 2), "accepted", "ok"),
    ("p4", ms(DAY - dt.timedelta(days=1), 22, 0), "accepted", "ok"),  # the night before: not ours
]


@pytest.fixture
async def report(tmp_path: Path) -> dict[str, dict[str, dict[str, str]]]:
    db_path = tmp_path / "tack.db"
    await store_punches(db_path, PUNCHES)
    policy = Policy(SH, SHIFTS)
    db = await open_database(db_path)
    try:
        teams = await daily_summaries(db, policy, DAY)
    finally:
        await db.close()
    paths = write_daily_report(tmp_path / "out", policy, "hq", DAY, teams)
    assert sorted(p.name for p in paths) == [
        "2026-03-02_hq_ops.csv",
        "2026-03-02_hq_ops.png",
        "2026-03-02_hq_sales.csv",
        "2026-03-02_hq_sales.png",
    ]
    out: dict[str, dict[str, dict[str, str]]] = {}
    for p in paths:
        if p.suffix == ".csv":
            with p.open(encoding="utf-8-sig", newline="") as f:
                out[p.stem.rsplit("_", 1)[1]] = {r["person_id"]: r for r in csv.DictReader(f)}
        else:
            width, height, rows, _info = png.Reader(filename=str(p)).read()
            assert width > 300
            assert height > 100
            assert sum(1 for _ in rows) == height
            assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return out


async def test_report_rows_per_team(report: dict[str, dict[str, dict[str, str]]]) -> None:
    sales, ops = report["sales"], report["ops"]
    assert set(sales) == {"p1", "p2", "p3"}
    assert set(ops) == {"p4", "p5"}, "inactive Old is left out"
    a = sales["p1"]
    assert (a["clock_in"], a["clock_out"], a["status"], a["late_min"]) == (
        "08:55",
        "18:05",
        "on_time",
        "0",
    )
    z = sales["p2"]
    assert (z["name"], z["status"], z["late_min"], z["early_min"]) == (
        "张伟",
        "late+left_early",
        "12",
        "30",
    )
    assert (z["punches"], z["refused"], z["outside_fence"]) == ("2", "1", "1")
    c = sales["p3"]
    assert (c["status"], c["leave"], c["clock_in"]) == ("on_leave", "annual", "")


async def test_report_night_shift_and_unapproved_leave(
    report: dict[str, dict[str, dict[str, str]]],
) -> None:
    d = report["ops"]["p4"]
    assert (d["shift"], d["clock_in"], d["clock_out"], d["status"]) == (
        "night",
        "21:50",
        "06:02 (+1)",
        "on_time",
    )
    assert d["punches"] == "2", "the previous night's punch belongs to the previous day"
    e = report["ops"]["p5"]
    assert (e["status"], e["leave"]) == ("absent", ""), "a leave request not approved is no leave"


async def test_report_in_a_dst_zone_uses_local_days(tmp_path: Path) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    monday = dt.date(2025, 3, 31)  # the first workday of summer time
    await store_punches(
        tmp_path / "tack.db",
        [
            ("p1", ms(monday, 9, 2, berlin), "accepted", "ok"),
            ("p1", ms(monday, 18, 0, berlin), "accepted", "ok"),
        ],
    )
    policy = Policy(berlin, [Shift("day", dt.time(9), dt.time(18))])
    db = await open_database(tmp_path / "tack.db")
    try:
        teams = await daily_summaries(db, policy, monday)
    finally:
        await db.close()
    (alice,) = [r for r in teams["sales"] if r.person.person_id == "p1"]
    assert (alice.status, alice.clock_in_ms) == ("on_time", ms(monday, 9, 2, berlin))


async def test_classify_punch_reads_previous_punches_and_leave_from_the_store(
    tmp_path: Path,
) -> None:
    await store_punches(tmp_path / "tack.db", PUNCHES)
    policy = Policy(SH, SHIFTS, repeat_window_s=120)
    db = await open_database(tmp_path / "tack.db")
    try:
        alice, carol = PEOPLE[0], PEOPLE[2]
        repeat = await classify_punch(db, policy, alice, ms(DAY, 8, 56))
        assert (repeat.status, repeat.record, repeat.reason) == (
            PunchStatus.REPEAT,
            False,
            ReasonCode.REPEAT_PUNCH,
        )
        redelivered = await classify_punch(
            db, policy, alice, ms(DAY, 8, 55), exclude=("term-1", "m0")
        )
        assert redelivered.status is PunchStatus.ON_TIME, "its own stored record is not a repeat"
        assert (await classify_punch(db, policy, carol, ms(DAY, 10, 0))).on_leave
        # A refused punch (outside the fence) does not open a repeat window.
        zhang = await classify_punch(db, policy, PEOPLE[1], ms(DAY, 8, 41))
        assert zhang.record
        assert zhang.status is PunchStatus.ON_TIME
    finally:
        await db.close()


def test_report_cli_writes_files_in_the_configured_zone(tmp_path: Path) -> None:
    import asyncio

    data = tmp_path / "data"
    asyncio.run(store_punches(data / "tack.db", PUNCHES))
    config = tmp_path / "tack.toml"
    config.write_text(
        f'site = "hq"\ndata_dir = "{data}"\n[attendance]\ntimezone = "Asia/Shanghai"\n'
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "report",
            "daily",
            "--date",
            "2026-03-02",
            "--out",
            str(tmp_path / "r"),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "2026-03-02_hq_ops.csv",
        "2026-03-02_hq_ops.png",
        "2026-03-02_hq_sales.csv",
        "2026-03-02_hq_sales.png",
    ]
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "report",
            "daily",
            "--date",
            "2 March",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "YYYY-MM-DD" in bad.stderr
