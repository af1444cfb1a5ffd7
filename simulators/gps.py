"""GPS traces for tests: NMEA 0183 ``$GPRMC``/``$GPGGA`` lines along a path, written to the file
a simulated terminal reads as its GPS UART (firmware setting ``gps_path``).

A trace is a list of waypoints walked at a given speed, one fix per ``interval_s``. Each fix
becomes an RMC (date, time, position, speed, course) and a GGA (time, position, fix quality,
satellites, HDOP) with correct ``*hh`` checksums. The firmware estimates accuracy as HDOP * 5 m,
so a wanted accuracy ``acc_m`` is written as HDOP ``acc_m / 5``.

Positions are interpolated along great circles and written with 4 decimals of a minute
(about 0.2 m), as common receivers do; longitudes wrap at the antimeridian.

``python -m simulators.gps --out gps.nmea --from 31.2304,121.4737 --to 31.2310,121.4750``
writes a walk; ``--follow`` appends it in real time, as a receiver would.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

EARTH_RADIUS_M = 6_371_008.8
_KNOTS_PER_MPS = 3600 / 1852


@dataclass(frozen=True, slots=True)
class TracePoint:
    when: dt.datetime  # UTC
    lat: float
    lon: float
    speed_mps: float = 0.0
    course_deg: float = 0.0
    acc_m: float = 5.0
    valid: bool = True
    sats: int = 9


def checksum(body: str) -> str:
    """XOR of the characters between ``$`` and ``*``, as two upper-case hex digits."""
    value = 0
    for byte in body.encode("ascii"):
        value ^= byte
    return f"{value:02X}"


def sentence(body: str) -> str:
    return f"${body}*{checksum(body)}"


def _coord(value: float, width: int, pos: str, neg: str) -> tuple[str, str]:
    hemi = pos if value >= 0 else neg
    value = abs(value)
    deg = int(value)
    minutes = (value - deg) * 60
    if round(minutes, 4) >= 60:  # 59.99999 rounds up to the next degree
        deg, minutes = deg + 1, 0.0
    return f"{deg:0{width}d}{minutes:07.4f}", hemi


def _time(when: dt.datetime) -> str:
    return when.strftime("%H%M%S.") + f"{when.microsecond // 10000:02d}"


def rmc(p: TracePoint, talker: str = "GP") -> str:
    lat, ns = _coord(p.lat, 2, "N", "S")
    lon, ew = _coord(p.lon, 3, "E", "W")
    status, mode = ("A", "A") if p.valid else ("V", "N")
    body = ",".join(
        [
            f"{talker}RMC",
            _time(p.when),
            status,
            lat,
            ns,
            lon,
            ew,
            f"{p.speed_mps * _KNOTS_PER_MPS:.2f}",
            f"{p.course_deg % 360:.1f}",
            p.when.strftime("%d%m%y"),
            "",
            "",
            mode,
        ]
    )
    return sentence(body)


def gga(p: TracePoint, talker: str = "GP") -> str:
    lat, ns = _coord(p.lat, 2, "N", "S")
    lon, ew = _coord(p.lon, 3, "E", "W")
    hdop = max(0.5, p.acc_m / 5)
    body = ",".join(
        [
            f"{talker}GGA",
            _time(p.when),
            lat,
            ns,
            lon,
            ew,
            "1" if p.valid else "0",
            f"{p.sats:02d}" if p.valid else "00",
            f"{hdop:.1f}",
            "12.0",
            "M",
            "8.0",
            "M",
            "",
            "",
        ]
    )
    return sentence(body)


def _bearing_distance(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    p1, p2 = math.radians(a[0]), math.radians(b[0])
    dl = math.radians(b[1] - a[1])
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    h = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    dist = 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))
    return math.degrees(math.atan2(x, y)) % 360, dist


def _destination(a: tuple[float, float], bearing: float, dist_m: float) -> tuple[float, float]:
    p1, l1 = math.radians(a[0]), math.radians(a[1])
    th, d = math.radians(bearing), dist_m / EARTH_RADIUS_M
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(th))
    l2 = l1 + math.atan2(
        math.sin(th) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    lon = (math.degrees(l2) + 540) % 360 - 180  # wrap across the antimeridian
    return math.degrees(p2), lon


def walk(
    waypoints: Sequence[tuple[float, float]],
    *,
    start: dt.datetime,
    speed_mps: float = 1.4,
    interval_s: float = 1.0,
    acc_m: float = 5.0,
) -> Iterator[TracePoint]:
    """Fixes every ``interval_s`` along the waypoints at ``speed_mps`` (1.4 m/s: walking);
    the last fix is at the last waypoint, standing still."""
    if len(waypoints) < 1:
        raise ValueError("a walk needs at least one waypoint")
    if speed_mps <= 0 or interval_s <= 0:
        raise ValueError("speed_mps and interval_s must be positive")
    if start.tzinfo is None:
        raise ValueError("start must be an aware datetime (UTC)")
    start = start.astimezone(dt.UTC)
    t = 0.0
    here = waypoints[0]
    step = speed_mps * interval_s
    for target in waypoints[1:]:
        bearing, left = _bearing_distance(here, target)
        while left > step:
            yield TracePoint(start + dt.timedelta(seconds=t), *here, speed_mps, bearing, acc_m)
            here = _destination(here, bearing, step)
            bearing, left = _bearing_distance(here, target)
            t += interval_s
        here = target
    yield TracePoint(start + dt.timedelta(seconds=t), *here, 0.0, 0.0, acc_m)


def lines(points: Sequence[TracePoint] | Iterator[TracePoint], talker: str = "GP") -> Iterator[str]:
    """RMC then GGA for each fix, as a receiver sends them each second."""
    for p in points:
        yield rmc(p, talker)
        yield gga(p, talker)


def write_trace(
    path: Path, points: Sequence[TracePoint] | Iterator[TracePoint], *, append: bool = False
) -> int:
    """Write (or append) a trace; returns the number of lines. Lines end with CRLF, as on a UART."""
    n = 0
    with path.open("a" if append else "w", encoding="ascii", newline="") as f:
        for line in lines(points):
            f.write(line + "\r\n")
            n += 1
    return n


def follow(path: Path, points: Sequence[TracePoint], *, speedup: float = 1.0) -> None:
    """Append fixes in real time (``speedup`` > 1 runs faster), flushing each, like a UART."""
    previous: dt.datetime | None = None
    with path.open("a", encoding="ascii", newline="") as f:
        for p in points:
            if previous is not None:
                time.sleep(max(0.0, (p.when - previous).total_seconds() / speedup))
            previous = p.when
            f.write(rmc(p) + "\r\n" + gga(p) + "\r\n")
            f.flush()


def _pair(text: str) -> tuple[float, float]:
    lat, lon = (float(v) for v in text.split(","))
    return lat, lon


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m simulators.gps", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--out", type=Path, required=True, help="the terminal's gps_path file")
    ap.add_argument("--from", dest="start_at", type=_pair, required=True, help="lat,lon")
    ap.add_argument("--to", dest="to", type=_pair, action="append", default=[], help="lat,lon")
    ap.add_argument("--speed-mps", type=float, default=1.4)
    ap.add_argument("--acc-m", type=float, default=5.0)
    ap.add_argument("--follow", action="store_true", help="append in real time")
    ap.add_argument("--speedup", type=float, default=1.0)
    args = ap.parse_args(argv)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    points = list(
        walk([args.start_at, *args.to], start=now, speed_mps=args.speed_mps, acc_m=args.acc_m)
    )
    if args.follow:
        follow(args.out, points, speedup=args.speedup)
    else:
        write_trace(args.out, points)
    print(f"{len(points)} fixes written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
