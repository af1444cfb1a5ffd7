"""The GPS check of a punch: spoof checks first, then where the fix lies against the site's
geofences, each refusal with its own reason code.

Order: mock provider, a fix from the future, a stale fix, accuracy worse than allowed, an
impossible speed from the person's previous fix, then the fences. The cheap, certain refusals
come first, so a forged fix is named as forged rather than as "outside".

The verifier keeps each person's last accepted fix in memory (seeded from the store with
:func:`gateway.verify.geo.store.recent_fixes` at start) for the speed check. It is sync and
CPU-light (a few microseconds per fence), so the ingest path can call it inline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from devices.protocol.messages import GpsFix
from devices.protocol.reasons import ReasonCode
from gateway.config import AttendanceSettings
from gateway.verify.geo.fence import Geofence, Where, haversine_m

_E7 = 10_000_000


@dataclass(frozen=True, slots=True)
class Fix:
    """A position as the gateway reasons about it.

    ``provider`` ("gps", "network", "fused", ...) and ``mock`` are ``None`` when the sender did
    not say: both are optional on the wire (a terminal's receiver sends ``prov`` "gps" and no
    ``mock``; a phone sends both).
    """

    lat: float
    lon: float
    acc_m: float | None = None
    ts_ms: int | None = None
    provider: str | None = None
    mock: bool | None = None

    @classmethod
    def from_wire(cls, gps: GpsFix) -> Fix:
        return cls(
            gps.lat_e7 / _E7,
            gps.lon_e7 / _E7,
            None if gps.acc_m is None else float(gps.acc_m),
            gps.ts_ms,
            gps.provider,
            gps.mock,
        )


@dataclass(frozen=True, slots=True)
class GeoPolicy:
    """The knobs of the check; built from ``attendance.*`` settings with :meth:`from_settings`."""

    accuracy_policy: str = "contain"  # or "max"
    max_accuracy_m: float = 100.0
    missing_accuracy_m: float = 50.0
    max_speed_kmh: float = 900.0
    max_fix_age_s: float = 120.0
    max_fix_ahead_s: float = 30.0
    gps_required: bool = False

    @classmethod
    def from_settings(cls, s: AttendanceSettings) -> GeoPolicy:
        return cls(
            accuracy_policy=s.accuracy_policy,
            max_accuracy_m=float(s.max_accuracy_m),
            missing_accuracy_m=float(s.missing_accuracy_m),
            max_speed_kmh=s.max_speed_kmh,
            max_fix_age_s=s.max_fix_age_s,
            max_fix_ahead_s=s.max_fix_ahead_s,
            gps_required=s.gps_required,
        )


@dataclass(frozen=True, slots=True)
class GeoResult:
    """``ok`` with ``reason`` OK, or a refusal; ``text`` is what the terminal shows, ``detail``
    is for logs and the admin (never shown to the person: it has distances and names)."""

    ok: bool
    reason: ReasonCode
    text: str
    detail: str = ""
    fence: str | None = None  # the fence the fix was inside, when ok
    checked: bool = True  # False: no fence at the site, or no fix and none required


_TEXT = {
    ReasonCode.OK: "Location OK",
    ReasonCode.OUTSIDE_GEOFENCE: "Outside the work area",
    ReasonCode.GPS_INACCURATE: "GPS too weak: try again",
    ReasonCode.GPS_MISSING: "No GPS fix: see facilities",
    ReasonCode.GPS_MOCK: "Fake location: not recorded",
    ReasonCode.GPS_STALE: "GPS fix too old: try again",
    ReasonCode.GPS_FUTURE: "GPS time wrong: see facilities",
    ReasonCode.GPS_IMPOSSIBLE_SPEED: "Location jump: not recorded",
}


def _refuse(reason: ReasonCode, detail: str) -> GeoResult:
    return GeoResult(False, reason, _TEXT[reason], detail)


@dataclass(frozen=True, slots=True)
class _Seen:
    lat: float
    lon: float
    acc_m: float
    ts_ms: int


class GeoVerifier:
    """Checks fixes against one site's fences; see the module docstring for the order."""

    def __init__(self, fences: Iterable[Geofence], policy: GeoPolicy | None = None) -> None:
        self._fences = tuple(fences)
        self.policy = policy or GeoPolicy()
        self._last: dict[str, _Seen] = {}

    @property
    def fences(self) -> tuple[Geofence, ...]:
        return self._fences

    def replace_fences(self, fences: Iterable[Geofence]) -> None:
        """New fences from the store or the bridge; last positions are kept."""
        self._fences = tuple(fences)

    def seed(self, last: Mapping[str, Fix]) -> None:
        """Each person's last accepted fix (from the store), for the speed check after a restart."""
        for person_id, fix in last.items():
            if fix.ts_ms is not None:
                self._remember(person_id, fix, fix.ts_ms)

    def check(
        self,
        fix: Fix | GpsFix | None,
        *,
        person_id: str | None,
        device_id: str,
        punch_ts_ms: int,
        received_ms: int,
    ) -> GeoResult:
        """Decide on one punch's fix.

        ``punch_ts_ms`` is when the person punched (the envelope's ``ts``), ``received_ms`` the
        gateway's clock now. A fix is stale against the punch (a punch replayed from an outbox
        hours later is not stale) and "from the future" against the gateway's clock or the punch.
        On ``ok`` the fix becomes the person's last position for the next speed check.
        """
        p = self.policy
        if not self._fences:
            return GeoResult(True, ReasonCode.OK, _TEXT[ReasonCode.OK], "no geofence", None, False)
        if fix is None:
            if p.gps_required:
                return _refuse(ReasonCode.GPS_MISSING, f"device {device_id} sent no fix")
            return GeoResult(True, ReasonCode.OK, _TEXT[ReasonCode.OK], "no fix", None, False)
        if isinstance(fix, GpsFix):
            fix = Fix.from_wire(fix)
        if fix.mock is True:
            return _refuse(ReasonCode.GPS_MOCK, f"provider {fix.provider or 'unknown'} is mock")
        ahead_ms = p.max_fix_ahead_s * 1000
        if fix.ts_ms is not None:
            if fix.ts_ms > received_ms + ahead_ms or fix.ts_ms > punch_ts_ms + ahead_ms:
                ahead = (fix.ts_ms - min(received_ms, punch_ts_ms)) / 1000
                return _refuse(ReasonCode.GPS_FUTURE, f"fix is {ahead:.0f} s ahead")
            age_s = (punch_ts_ms - fix.ts_ms) / 1000
            if age_s > p.max_fix_age_s:
                return _refuse(ReasonCode.GPS_STALE, f"fix is {age_s:.0f} s older than the punch")
        acc = p.missing_accuracy_m if fix.acc_m is None else max(0.0, fix.acc_m)
        if acc > p.max_accuracy_m:
            return _refuse(
                ReasonCode.GPS_INACCURATE, f"accuracy {acc:.0f} m > {p.max_accuracy_m:.0f} m"
            )
        when = fix.ts_ms if fix.ts_ms is not None else punch_ts_ms
        if person_id is not None:
            speed = self._speed_kmh(person_id, fix.lat, fix.lon, acc, when)
            if speed is not None and speed > p.max_speed_kmh:
                return _refuse(
                    ReasonCode.GPS_IMPOSSIBLE_SPEED,
                    f"{speed:.0f} km/h from the previous fix (limit {p.max_speed_kmh:.0f})",
                )
        result = self._locate(fix.lat, fix.lon, acc)
        if result.ok and person_id is not None:
            self._remember(person_id, fix, when)
        return result

    def _locate(self, lat: float, lon: float, acc: float) -> GeoResult:
        p = self.policy
        straddles: list[str] = []
        for fence in self._fences:
            where = fence.locate(lat, lon, acc if p.accuracy_policy == "contain" else 0.0)
            if where is Where.INSIDE:
                return GeoResult(
                    True, ReasonCode.OK, _TEXT[ReasonCode.OK], f"inside {fence.name}", fence.name
                )
            if where is Where.STRADDLES:
                straddles.append(fence.name)
        if straddles:
            return _refuse(
                ReasonCode.GPS_INACCURATE,
                f"accuracy circle of {acc:.0f} m crosses the edge of {', '.join(straddles)}",
            )
        return _refuse(ReasonCode.OUTSIDE_GEOFENCE, f"outside {len(self._fences)} fence(s)")

    def _speed_kmh(
        self, person_id: str, lat: float, lon: float, acc: float, ts: int
    ) -> float | None:
        last = self._last.get(person_id)
        if last is None:
            return None
        # Both fixes may be off by their accuracy: only the distance beyond that must be covered.
        moved_m = haversine_m(last.lat, last.lon, lat, lon) - last.acc_m - acc
        if moved_m <= 0:
            return None
        dt_s = abs(ts - last.ts_ms) / 1000
        if dt_s < 1:
            return math.inf
        return moved_m / dt_s * 3.6

    def _remember(self, person_id: str, fix: Fix, ts_ms: int) -> None:
        last = self._last.get(person_id)
        if last is not None and last.ts_ms > ts_ms:
            return  # a punch replayed out of order does not move the person back in time
        acc = self.policy.missing_accuracy_m if fix.acc_m is None else fix.acc_m
        self._last[person_id] = _Seen(fix.lat, fix.lon, acc, ts_ms)
