"""GPS verification of punches (外勤 sign-in): geofences, accuracy policy and spoof checks.

``GeoVerifier(fences, GeoPolicy.from_settings(settings.attendance)).check(fix, ...)`` returns a
:class:`GeoResult`; docs/attendance.md ("GPS") describes the rules.
"""

from gateway.verify.geo.check import Fix, GeoPolicy, GeoResult, GeoVerifier
from gateway.verify.geo.fence import (
    BOUNDARY_TOLERANCE_M,
    Circle,
    Geofence,
    GeofenceError,
    PolygonFence,
    Where,
    fence_from_spec,
    fences_from_json,
    haversine_m,
)

__all__ = [
    "BOUNDARY_TOLERANCE_M",
    "Circle",
    "Fix",
    "GeoPolicy",
    "GeoResult",
    "GeoVerifier",
    "Geofence",
    "GeofenceError",
    "PolygonFence",
    "Where",
    "fence_from_spec",
    "fences_from_json",
    "haversine_m",
]
