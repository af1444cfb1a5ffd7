"""Geofences: circles and polygons (with holes) on the Earth, asked where a fix's accuracy
circle lies.

A circle is measured with the haversine distance on a sphere of the Earth's mean radius. A
polygon is projected once, when it is built, into an azimuthal equidistant plane centred on
its own vertices: distances from that centre are exact on the sphere and a fence a few
kilometres across is distorted by millimetres, so Shapely can do the planar work (point in
polygon, distance to the nearest edge, holes). Longitudes enter the projection only through
sines and cosines of differences, so a fence across the antimeridian (lon 179.99 to -179.99)
is as contiguous as any other: nothing ever compares raw longitudes.

Every question returns a :class:`Where` for the whole accuracy circle, not only its centre:
inside, outside or straddling the boundary. A point within :data:`BOUNDARY_TOLERANCE_M` of an
edge counts as on it, and on the boundary counts as inside.
"""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import shapely
from shapely.geometry import Point, Polygon
from shapely.prepared import PreparedGeometry, prep

from devices.protocol.errors import TackError
from devices.protocol.reasons import ReasonCode

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius: the sphere both shapes are measured on
# Within this of an edge a point is on the boundary. 5 cm: the wire carries 1e-7 degree
# (1.1 cm), and a polygon edge on the projection differs from a map's straight line by about
# a centimetre per kilometre of edge; no GPS tells 5 cm apart.
BOUNDARY_TOLERANCE_M = 0.05
# An attendance fence is a building or a campus; beyond this the projection (and the very idea
# of "arriving at work") stops making sense, so bigger shapes are refused when they are loaded.
MAX_FENCE_EXTENT_M = 100_000.0
MAX_VERTICES = 10_000

Coord = tuple[float, float]  # (lat, lon) in degrees


class GeofenceError(TackError):
    """A geofence that cannot be used; the message names the fence and what is wrong."""

    reason_code = ReasonCode.INVALID_VALUE


class Where(enum.StrEnum):
    INSIDE = "inside"  # the whole accuracy circle is inside (or on the boundary)
    OUTSIDE = "outside"  # the whole circle is outside
    STRADDLES = "straddles"  # the circle crosses the boundary: the fix cannot tell


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _check_coord(name: str, lat: float, lon: float) -> None:
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise GeofenceError(f"geofence {name!r}: coordinates must be finite numbers")
    if not -90.0 <= lat <= 90.0 or not -180.0 <= lon <= 180.0:
        raise GeofenceError(
            f"geofence {name!r}: ({lat}, {lon}) is not a latitude in -90..90 and a longitude "
            "in -180..180 (give [lat, lon] pairs, latitude first)"
        )


@dataclass(frozen=True, slots=True)
class Circle:
    name: str
    lat: float
    lon: float
    radius_m: float

    def __post_init__(self) -> None:
        _check_coord(self.name, self.lat, self.lon)
        if not (math.isfinite(self.radius_m) and 0 < self.radius_m <= MAX_FENCE_EXTENT_M / 2):
            raise GeofenceError(
                f"geofence {self.name!r}: radius_m must be above 0 and at most "
                f"{MAX_FENCE_EXTENT_M / 2:.0f} m (got {self.radius_m})"
            )

    @property
    def kind(self) -> str:
        return "circle"

    def distance_from_centre_m(self, lat: float, lon: float) -> float:
        return haversine_m(self.lat, self.lon, lat, lon)

    def locate(self, lat: float, lon: float, acc_m: float = 0.0) -> Where:
        d = self.distance_from_centre_m(lat, lon)
        r = self.radius_m + BOUNDARY_TOLERANCE_M
        if d + acc_m <= r:
            return Where.INSIDE
        if d - acc_m > r:
            return Where.OUTSIDE
        return Where.STRADDLES

    def spec(self) -> dict[str, Any]:
        return {"center": [self.lat, self.lon], "radius_m": self.radius_m}


@dataclass(frozen=True, slots=True)
class _Projection:
    """Spherical azimuthal equidistant projection about (lat0, lon0), in metres."""

    lat0: float
    lon0: float

    def xy(self, lat: float, lon: float) -> Coord:
        p0, p = math.radians(self.lat0), math.radians(lat)
        dl = math.radians(lon - self.lon0)  # only sin/cos of it are used: wrap-proof
        cos_c = math.sin(p0) * math.sin(p) + math.cos(p0) * math.cos(p) * math.cos(dl)
        c = math.acos(max(-1.0, min(1.0, cos_c)))
        k = 1.0 if c < 1e-12 else c / math.sin(c)
        x = k * math.cos(p) * math.sin(dl)
        y = k * (math.cos(p0) * math.sin(p) - math.sin(p0) * math.cos(p) * math.cos(dl))
        return (EARTH_RADIUS_M * x, EARTH_RADIUS_M * y)


def _centre(name: str, ring: Sequence[Coord]) -> Coord:
    """A centre for the projection: the mean of the vertices as unit vectors (wrap-proof)."""
    sx = sy = sz = 0.0
    for lat, lon in ring:
        p, lam = math.radians(lat), math.radians(lon)
        sx += math.cos(p) * math.cos(lam)
        sy += math.cos(p) * math.sin(lam)
        sz += math.sin(p)
    norm = math.sqrt(sx * sx + sy * sy + sz * sz)
    if norm < 1e-9:
        raise GeofenceError(f"geofence {name!r}: its vertices surround the whole Earth")
    return (math.degrees(math.asin(sz / norm)), math.degrees(math.atan2(sy, sx)))


@dataclass(frozen=True, slots=True)
class PolygonFence:
    """A polygon given as rings of (lat, lon): the outer ring, then any holes."""

    name: str
    shell: tuple[Coord, ...]
    holes: tuple[tuple[Coord, ...], ...] = ()
    _proj: _Projection = field(init=False, repr=False, compare=False)
    _shape: Polygon = field(init=False, repr=False, compare=False)
    _prepared: PreparedGeometry[Polygon] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        rings = (self.shell, *self.holes)
        if sum(len(r) for r in rings) > MAX_VERTICES:
            raise GeofenceError(f"geofence {self.name!r}: more than {MAX_VERTICES} vertices")
        for ring in rings:
            if len(ring) < 3:
                raise GeofenceError(f"geofence {self.name!r}: a ring needs at least 3 vertices")
            for lat, lon in ring:
                _check_coord(self.name, lat, lon)
        proj = _Projection(*_centre(self.name, self.shell))
        shape = Polygon(
            [proj.xy(*c) for c in self.shell], [[proj.xy(*c) for c in h] for h in self.holes]
        )
        if not shape.is_valid:
            why = shapely.is_valid_reason(shape)
            raise GeofenceError(
                f"geofence {self.name!r} is not a valid polygon ({why}); check that edges do "
                "not cross and that holes lie inside the outer ring"
            )
        minx, miny, maxx, maxy = shape.bounds
        if max(maxx - minx, maxy - miny) > MAX_FENCE_EXTENT_M:
            raise GeofenceError(
                f"geofence {self.name!r} is more than {MAX_FENCE_EXTENT_M / 1000:.0f} km across; "
                "an attendance fence is a building or a campus (a ring given as [lon, lat] "
                "instead of [lat, lon] looks like this too)"
            )
        object.__setattr__(self, "_proj", proj)
        object.__setattr__(self, "_shape", shape)
        object.__setattr__(self, "_prepared", prep(shape))

    @property
    def kind(self) -> str:
        return "polygon"

    @property
    def area_m2(self) -> float:
        return float(self._shape.area)

    def locate(self, lat: float, lon: float, acc_m: float = 0.0) -> Where:
        x, y = self._proj.xy(lat, lon)
        point = Point(x, y)
        edge = float(self._shape.boundary.distance(point))
        if self._prepared.covers(point) or edge <= BOUNDARY_TOLERANCE_M:
            return Where.INSIDE if acc_m <= edge + BOUNDARY_TOLERANCE_M else Where.STRADDLES
        return Where.OUTSIDE if acc_m < edge - BOUNDARY_TOLERANCE_M else Where.STRADDLES

    def spec(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shell": [list(c) for c in self.shell]}
        if self.holes:
            out["holes"] = [[list(c) for c in h] for h in self.holes]
        return out


Geofence = Circle | PolygonFence


def _ring(name: str, value: Any) -> tuple[Coord, ...]:
    if not isinstance(value, list):
        raise GeofenceError(f"geofence {name!r}: a ring is a list of [lat, lon] pairs")
    out: list[Coord] = []
    for pair in value:
        if (
            not isinstance(pair, list | tuple)
            or len(pair) != 2
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
        ):
            raise GeofenceError(f"geofence {name!r}: {pair!r} is not a [lat, lon] pair")
        out.append((float(pair[0]), float(pair[1])))
    if len(out) > 1 and out[0] == out[-1]:
        out.pop()  # a closed ring (GeoJSON style) and an open one mean the same
    return tuple(out)


def fence_from_spec(name: str, kind: str, spec: dict[str, Any]) -> Geofence:
    """Build a fence from its stored or file form; raises :class:`GeofenceError`.

    ``circle``: ``{"center": [lat, lon], "radius_m": r}``; ``polygon``:
    ``{"shell": [[lat, lon], ...], "holes": [[[lat, lon], ...], ...]}``.
    """
    if not name or len(name) > 64:
        raise GeofenceError("a geofence needs a name of 1-64 characters")
    if kind == "circle":
        centre = spec.get("center")
        radius = spec.get("radius_m")
        if (
            not isinstance(centre, list)
            or len(centre) != 2
            or not isinstance(radius, int | float)
            or isinstance(radius, bool)
        ):
            raise GeofenceError(f"geofence {name!r}: a circle needs center [lat, lon] and radius_m")
        return Circle(name, float(centre[0]), float(centre[1]), float(radius))
    if kind == "polygon":
        holes = spec.get("holes", [])
        if not isinstance(holes, list):
            raise GeofenceError(f"geofence {name!r}: holes is a list of rings")
        return PolygonFence(
            name, _ring(name, spec.get("shell")), tuple(_ring(name, h) for h in holes)
        )
    raise GeofenceError(f"geofence {name!r}: kind must be 'circle' or 'polygon', not {kind!r}")


def fences_from_json(text: str) -> list[Geofence]:
    """A fences file: ``{"geofences": [{"name", "kind", ...spec}, ...]}`` (or the bare list)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise GeofenceError(f"the geofence file is not JSON: {exc}") from exc
    items = data.get("geofences") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise GeofenceError('the geofence file needs a list under "geofences"')
    out: list[Geofence] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            raise GeofenceError("each geofence is an object with name, kind and its shape")
        name, kind = item.get("name"), item.get("kind")
        if not isinstance(name, str) or not isinstance(kind, str):
            raise GeofenceError("each geofence needs a string name and kind")
        if name in seen:
            raise GeofenceError(f"geofence {name!r} is given twice")
        seen.add(name)
        out.append(fence_from_spec(name, kind, item))
    return out
