"""NMEA 0183 from the GPS UART: the latest valid fix, in integers a punch can carry as they are.

Only ``RMC`` (position, date and time, valid or void) and ``GGA`` (position, time, fix quality,
satellites, HDOP) are read, from any talker (``$GP``, ``$GN`` for multi-constellation, ...).
A sentence counts only with a correct ``*hh`` checksum: a UART that drops or flips a byte must
not move the terminal across town. Bad checksums and garbage are counted and ignored.

Numbers stay integers all the way: ``3113.8241,N`` is 31 degrees + 13.8241 minutes, computed on
the digit strings as 31 * 10**7 + round(138241000 / 60) = 312304017 in units of 1e-7 degree.
The digits after the 7th of the minutes are dropped (a 7th digit of a minute is 2 mm).

The fix (``GpsReader.fix()``)::

    {"lat": int 1e-7 deg, "lon": int 1e-7 deg, "acc": int m or None, "ts": int ms or None,
     "sats": int or None, "prov": "gps"}

``prov`` goes on the wire: a receiver's fix is a satellite fix, never a phone's mock location.

- ``acc`` is an estimate, HDOP * 5 m rounded (a typical receiver's 5 m error at HDOP 1). It
  and ``sats`` come from the last GGA, if that is no older than ``max_age_ms``; else None.
- ``ts`` is UTC milliseconds since 1970 of the fix itself, not of its reception. RMC carries
  the date; GGA carries only the time of day, so a GGA fix takes the date of the last valid
  RMC, moved a day either way if the times straddle midnight. Before any valid RMC it is None.
  Two-digit years are read as 1980-2079 (1980 is the GPS epoch).
- RMC status ``V`` (void), RMC mode ``N`` and GGA quality 0 mean the receiver has no fix: the
  fix is cleared, not kept until it ages out.
- A fix older than ``max_age_ms`` (by the monotonic ``time.ticks_ms()`` clock, or the
  ``now_ms`` given) is not returned: a GPS that stopped talking has no position to offer.
"""

import time

from micropython import const

_DAY_MS = const(86400000)
_HALF_DAY_MS = const(43200000)
_E7 = const(10000000)
# NMEA caps a sentence at 82 characters; a longer run without a newline is noise.
_MAX_LINE = const(120)
_OTHER = "other"  # a sentence with a good checksum that we do not read


def parse(line):
    """One sentence (str or bytes) as a dict, or None if it is bad or not RMC/GGA.

    RMC: {"type": "RMC", "valid", "time_ms", "lat", "lon", "days", "ts"}
    GGA: {"type": "GGA", "valid", "time_ms", "lat", "lon", "quality", "sats", "hdop_x100",
    "acc"}. ``time_ms`` is milliseconds since midnight UTC, ``days`` days since 1970-01-01;
    fields the sentence leaves empty are None.
    """
    p = _parse(line)
    return None if p is _OTHER else p


def _parse(line):
    if isinstance(line, (bytes, bytearray)):
        try:
            line = bytes(line).decode()
        except ValueError:  # UnicodeError: line noise
            return None
    line = line.strip()
    start = line.rfind("$")  # noise before the '$' (a UART waking up) is skipped
    star = line.rfind("*")
    if start < 0 or star < start or star != len(line) - 3:
        return None
    body = line[start + 1 : star]
    try:
        want = int(line[star + 1 :], 16)
    except ValueError:
        return None
    got = 0
    for c in body.encode():  # bytes: a str's characters would each become a qstr
        got ^= c
    if got != want:
        return None
    fields = body.split(",")
    kind = fields[0][2:] if len(fields[0]) == 5 else ""
    try:
        if kind == "RMC":
            return _rmc(fields)
        if kind == "GGA":
            return _gga(fields)
    except (ValueError, IndexError):
        return None  # a good checksum over a malformed sentence: still not trusted
    return _OTHER


def _rmc(f):
    # $xxRMC,time,status,lat,N/S,lon,E/W,speed,course,ddmmyy,magvar,E/W[,mode[,navstatus]]
    t = _time_ms(f[1])
    lat = _coord(f[3], f[4], 90, "N", "S")
    lon = _coord(f[5], f[6], 180, "E", "W")
    days = _days(f[9])
    valid = f[2] == "A" and not (len(f) > 12 and f[12] == "N")
    valid = valid and t is not None and lat is not None and lon is not None
    ts = days * _DAY_MS + t if days is not None and t is not None else None
    return {
        "type": "RMC",
        "valid": valid,
        "time_ms": t,
        "lat": lat,
        "lon": lon,
        "days": days,
        "ts": ts,
    }


def _gga(f):
    # $xxGGA,time,lat,N/S,lon,E/W,quality,sats,hdop,alt,M,geoid,M,age,station
    t = _time_ms(f[1])
    lat = _coord(f[2], f[3], 90, "N", "S")
    lon = _coord(f[4], f[5], 180, "E", "W")
    quality = _uint(f[6]) if f[6] else 0
    sats = _uint(f[7]) if f[7] else None
    hdop = _fixed(f[8], 2) if f[8] else None
    acc = None if hdop is None else max(1, (hdop * 5 + 50) // 100)
    valid = quality > 0 and t is not None and lat is not None and lon is not None
    return {
        "type": "GGA",
        "valid": valid,
        "time_ms": t,
        "lat": lat,
        "lon": lon,
        "quality": quality,
        "sats": sats,
        "hdop_x100": hdop,
        "acc": acc,
    }


def _uint(s):
    if not s or not s.isdigit():
        raise ValueError("not digits: %r" % s)
    return int(s)


def _fixed(s, places):
    """'1.25' with places=2 -> 125, from the digits (no float)."""
    whole, _, frac = s.partition(".")
    frac = frac[:places]
    value = _uint(whole) if whole else 0
    scaled = value * 10**places
    if frac:
        scaled += _uint(frac) * 10 ** (places - len(frac))
    return scaled


def _time_ms(s):
    """'hhmmss[.sss]' -> ms since midnight, or None if empty."""
    if not s:
        return None
    if len(s) < 6 or (len(s) > 6 and s[6] != "."):
        raise ValueError("bad time %r" % s)
    hh = _uint(s[0:2])
    mm = _uint(s[2:4])
    ss = _uint(s[4:6])
    if hh > 23 or mm > 59 or ss > 60:  # 60: a leap second
        raise ValueError("bad time %r" % s)
    ms = _fixed("0" + s[6:], 3) if len(s) > 7 else 0
    return ((hh * 60 + mm) * 60 + ss) * 1000 + ms


def _coord(s, hemi, limit, pos, neg):
    """'ddmm.mmmm' or 'dddmm.mmmm' and its hemisphere -> signed 1e-7 degrees, None if empty."""
    if not s or not hemi:
        return None
    whole, _, frac = s.partition(".")
    if len(whole) < 3 or (hemi != pos and hemi != neg):
        raise ValueError("bad coordinate %r,%s" % (s, hemi))
    deg = _uint(whole[:-2])
    minutes = _uint(whole[-2:])
    frac = frac[:7]
    m7 = minutes * _E7 + (_uint(frac) * 10 ** (7 - len(frac)) if frac else 0)
    value = deg * _E7 + (m7 + 30) // 60  # 1e-7 minutes / 60 = 1e-7 degrees, rounded
    if minutes > 59 or value > limit * _E7:
        raise ValueError("coordinate out of range %r" % s)
    return -value if hemi == neg else value


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days(s):
    """'ddmmyy' -> days since 1970-01-01 (years 1980-2079), or None if empty."""
    if not s:
        return None
    if len(s) != 6:
        raise ValueError("bad date %r" % s)
    d = _uint(s[0:2])
    m = _uint(s[2:4])
    y = _uint(s[4:6])
    y += 1900 if y >= 80 else 2000
    if not 1 <= m <= 12 or not 1 <= d <= _MONTH_DAYS[m - 1]:
        raise ValueError("bad date %r" % s)
    # Days from the civil date (H. Hinnant's algorithm), in integers.
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


class GpsReader:
    """Keeps the latest valid fix from a stream of NMEA lines or raw UART bytes."""

    def __init__(self, max_age_ms=10000):
        self.max_age_ms = max_age_ms
        self.good = 0  # RMC/GGA sentences read
        self.bad = 0  # bad checksum, malformed or overlong: ignored
        self.other = 0  # other sentences with a good checksum (GSV, VTG, ...): ignored
        self._tail = b""
        self._pos = None  # [lat, lon, ts, time_ms] of the current fix
        self._pos_at = time.ticks_ms()
        self._gga = None  # (acc, sats) of the last valid GGA
        self._gga_at = time.ticks_ms()
        self._days = None  # date and time of the last valid RMC, for GGA fixes
        self._rmc_time = 0

    def feed(self, data, now_ms=None):
        """Raw bytes (or str) as read from the UART, in any chunks; lines end with '\\n'."""
        if isinstance(data, str):
            data = data.encode()
        lines = (self._tail + data).split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > _MAX_LINE:
            self._tail = b""
            self.bad += 1
        for line in lines:
            self.feed_line(line, now_ms)

    def feed_line(self, line, now_ms=None):
        """One sentence; returns what ``parse`` makes of it (None if ignored)."""
        if not line.strip():
            return None
        p = _parse(line)
        if p is None:
            self.bad += 1
            return None
        if p is _OTHER:
            self.other += 1
            return None
        self.good += 1
        now = time.ticks_ms() if now_ms is None else now_ms
        if not p["valid"]:
            self._pos = None  # the receiver says it has no fix now
            return p
        t = p["time_ms"]
        if p["type"] == "RMC":
            self._days = p["days"]
            self._rmc_time = t
            ts = p["ts"]
        else:
            self._gga = (p["acc"], p["sats"])
            self._gga_at = now
            ts = None
            pos = self._pos
            if pos is not None and pos[3] == t:
                ts = pos[2]  # the RMC of the same second already dated it
            elif self._days is not None:
                ts = self._days * _DAY_MS + t
                if t - self._rmc_time < -_HALF_DAY_MS:
                    ts += _DAY_MS  # GGA just after midnight, RMC date from before it
                elif t - self._rmc_time > _HALF_DAY_MS:
                    ts -= _DAY_MS
        self._pos = [p["lat"], p["lon"], ts, t]
        self._pos_at = now
        return p

    def fix(self, now_ms=None):
        pos = self._pos
        now = time.ticks_ms() if now_ms is None else now_ms
        if pos is None or time.ticks_diff(now, self._pos_at) > self.max_age_ms:
            return None
        acc = sats = None
        if self._gga is not None and time.ticks_diff(now, self._gga_at) <= self.max_age_ms:
            acc, sats = self._gga
        return {"lat": pos[0], "lon": pos[1], "acc": acc, "ts": pos[2], "sats": sats, "prov": "gps"}
