"""GPS traces from simulators/gps.py, read by the firmware's own NMEA reader on the real
MicroPython interpreter, then judged by the gateway's geofence check; and fences in the store."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from devices.protocol.messages import GpsFix
from devices.protocol.reasons import ReasonCode
from gateway.store import open_database
from gateway.verify.geo import Circle, GeoVerifier, PolygonFence
from gateway.verify.geo.store import load_fences, recent_fixes, replace_fences
from simulators.gps import checksum, gga, lines, rmc, walk, write_trace
from tests.firmware.micropython import micropython_bin, micropython_env

HQ = (31.2304, 121.4737)
START = dt.datetime(2026, 3, 2, 0, 58, 0, tzinfo=dt.UTC)

# Feed a trace file line by line to tack.nmea.GpsReader; print the fix after each GGA.
READ_TRACE = """
import json, sys
from tack.nmea import GpsReader
r = GpsReader(max_age_ms=10000)
with open(sys.argv[1]) as f:
    for line in f:
        p = r.feed_line(line, 0)
        if p and p["type"] == "GGA":
            print(json.dumps(r.fix(0)))
print(json.dumps({"good": r.good, "bad": r.bad}))
"""


def firmware_fixes(trace: Path, tmp_path: Path) -> tuple[list[dict[str, int]], dict[str, int]]:
    script = tmp_path / "read_trace.py"
    script.write_text(READ_TRACE)
    proc = subprocess.run(
        [micropython_bin(), str(script), str(trace)],
        env=micropython_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    return out[:-1], out[-1]


def test_sentences_carry_correct_checksums_and_fields() -> None:
    (point,) = walk([HQ], start=START, acc_m=12.0)
    r, g = rmc(point), gga(point)
    for line in (r, g):
        body, star = line[1:].split("*")
        assert star == checksum(body)
    assert r.startswith("$GPRMC,005800.00,A,3113.8240,N,12128.4220,E,")
    assert ",020326," in r
    assert g.split(",")[6:9] == ["1", "09", "2.4"], "HDOP is acc/5: the firmware reads 12 m"


def test_firmware_reads_a_walk_into_the_fence_and_the_gateway_accepts_the_end(
    tmp_path: Path,
) -> None:
    outside = (31.2330, 121.4737)  # about 290 m north of the lobby
    trace = tmp_path / "gps.nmea"
    points = list(walk([outside, HQ], start=START, speed_mps=5.0, acc_m=8.0))
    write_trace(trace, points)
    fixes, counts = firmware_fixes(trace, tmp_path)
    assert counts == {"good": 2 * len(points), "bad": 0}
    assert len(fixes) == len(points)
    last = fixes[-1]
    assert (last["lat"], last["lon"], last["acc"]) == (312304000, 1214737000, 8)
    assert last["ts"] == int(points[-1].when.timestamp() * 1000)

    v = GeoVerifier([Circle("lobby", *HQ, 100.0)])
    verdicts = [
        v.check(
            GpsFix(f["lat"], f["lon"], f["acc"], f["ts"]),
            person_id="p1",
            device_id="term-1",
            punch_ts_ms=f["ts"],
            received_ms=f["ts"],
        ).reason
        for f in fixes
    ]
    assert verdicts[0] is ReasonCode.OUTSIDE_GEOFENCE
    assert verdicts[-1] is ReasonCode.OK
    assert ReasonCode.GPS_INACCURATE in verdicts, "crossing the edge, the 8 m circle straddles it"
    assert ReasonCode.GPS_IMPOSSIBLE_SPEED not in verdicts, "5 m/s is a cyclist"


def test_a_trace_across_the_antimeridian_reads_as_west_longitudes(tmp_path: Path) -> None:
    trace = tmp_path / "gps.nmea"
    points = list(walk([(-16.805, 179.998), (-16.805, -179.998)], start=START, speed_mps=50.0))
    write_trace(trace, points)
    fixes, _ = firmware_fixes(trace, tmp_path)
    lons = [f["lon"] for f in fixes]
    assert lons[0] > 0 > lons[-1]
    fence = PolygonFence(
        "taveuni", ((-16.80, 179.99), (-16.80, -179.99), (-16.81, -179.99), (-16.81, 179.99))
    )
    v = GeoVerifier([fence])
    for f in fixes:
        fix = GpsFix(f["lat"], f["lon"], f["acc"], f["ts"])
        result = v.check(
            fix, person_id="p", device_id="t", punch_ts_ms=f["ts"], received_ms=f["ts"]
        )
        assert result.ok, (f, result.detail)


def test_void_fix_lines_are_written_as_no_fix(tmp_path: Path) -> None:
    (point,) = walk([HQ], start=START)
    trace = tmp_path / "gps.nmea"
    from dataclasses import replace

    write_trace(trace, [point, replace(point, valid=False)])
    fixes, _ = firmware_fixes(trace, tmp_path)
    assert fixes[0] is not None
    assert fixes[-1] is None


async def test_fences_round_trip_through_the_store_per_site(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "tack.db")
    try:
        hole = ((31.003, 121.003), (31.003, 121.007), (31.007, 121.007))
        fences = [
            Circle("lobby", *HQ, 80.0),
            PolygonFence(
                "campus", ((31.0, 121.0), (31.0, 121.01), (31.01, 121.01), (31.01, 121.0)), (hole,)
            ),
        ]
        assert await replace_fences(db, "hq", fences) == 2
        await replace_fences(db, "branch", [Circle("shop", 39.9, 116.4, 50.0)])
        loaded = await load_fences(db, "hq")
        assert {f.name: f for f in loaded} == {f.name: f for f in fences}
        assert [f.name for f in await load_fences(db, "branch")] == ["shop"]
        await replace_fences(db, "hq", [])
        assert await load_fences(db, "hq") == []
    finally:
        await db.close()


async def test_recent_fixes_come_from_accepted_punches_only(tmp_path: Path) -> None:
    db = await open_database(tmp_path / "tack.db")
    try:
        rows = [
            (
                "m1",
                1000,
                "p1",
                {"card": "C1", "gps": {"lat": 312304000, "lon": 1214737000, "acc": 5, "ts": 900}},
                "accepted",
            ),
            (
                "m2",
                2000,
                "p1",
                {"card": "C1", "gps": {"lat": 399042000, "lon": 1164074000, "acc": 5}},
                "rejected",
            ),
            ("m3", 3000, "p2", {"card": "C2"}, "accepted"),
        ]
        for mid, ts, pid, body, status in rows:
            await db.execute(
                "INSERT INTO records (device_id, msg_id, seq, kind, device_ts_ms, received_ts_ms,"
                " person_id, credential, body, status, reason, verdict, sync_state) VALUES"
                " ('t', ?, 1, 'punch', ?, ?, ?, 'C', ?, ?, 'ok', '{}', 'pending')",
                (mid, ts, ts, pid, json.dumps(body), status),
            )
        fixes = await recent_fixes(db, 0)
        assert set(fixes) == {"p1"}
        assert (fixes["p1"].lat, fixes["p1"].ts_ms, fixes["p1"].acc_m) == (31.2304, 900, 5.0)
    finally:
        await db.close()


def test_geofences_cli_loads_and_lists(tmp_path: Path) -> None:
    config = tmp_path / "tack.toml"
    config.write_text(f'site = "hq"\ndata_dir = "{tmp_path / "data"}"\n')
    fences = tmp_path / "fences.json"
    fences.write_text(
        json.dumps(
            {
                "geofences": [
                    {"name": "lobby", "kind": "circle", "center": list(HQ), "radius_m": 80},
                ]
            }
        )
    )

    def tack(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "gateway.cli", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    assert tack("geofences", "load", str(fences)).returncode == 0
    add = tack("geofences", "add", "yard", "--polygon", "31.0,121.0;31.0,121.01;31.01,121.01")
    assert add.returncode == 0, add.stderr
    listed = tack("geofences", "list")
    assert "lobby" in listed.stdout
    assert "yard" in listed.stdout
    assert "80 m" in listed.stdout
    bad = tack("geofences", "add", "swapped", "--center", "121.47,31.23", "--radius-m", "50")
    assert bad.returncode == 2
    assert "latitude" in bad.stderr
    assert "Traceback" not in bad.stderr


@pytest.mark.parametrize("talker", ["GP", "GN"])
def test_lines_alternate_rmc_and_gga(talker: str) -> None:
    out = list(lines(walk([HQ, (31.2306, 121.4737)], start=START), talker))
    assert [line[3:6] for line in out[:4]] == ["RMC", "GGA", "RMC", "GGA"]
    assert all(line.startswith(f"${talker}") for line in out)
