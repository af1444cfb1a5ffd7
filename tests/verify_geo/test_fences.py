"""Geofence geometry: the boundary, the antimeridian, holes, and shapes that must be refused."""

from __future__ import annotations

import math

import pytest

from gateway.verify.geo import (
    Circle,
    GeofenceError,
    PolygonFence,
    Where,
    fence_from_spec,
    fences_from_json,
    haversine_m,
)
from simulators.gps import _destination

HQ = (31.2304, 121.4737)  # People's Square, Shanghai


def test_circle_boundary_counts_as_inside_and_one_metre_beyond_does_not() -> None:
    fence = Circle("hq", *HQ, 100.0)
    on_edge = _destination(HQ, 37.0, 100.0)
    beyond = _destination(HQ, 37.0, 101.0)
    assert haversine_m(*HQ, *on_edge) == pytest.approx(100.0, abs=1e-6)
    assert fence.locate(*on_edge) is Where.INSIDE
    assert fence.locate(*beyond) is Where.OUTSIDE


def test_circle_accuracy_decides_inside_outside_or_cannot_tell() -> None:
    fence = Circle("hq", *HQ, 100.0)
    at_60 = _destination(HQ, 200.0, 60.0)
    assert fence.locate(*at_60, acc_m=40.0) is Where.INSIDE
    assert fence.locate(*at_60, acc_m=41.0) is Where.STRADDLES
    at_150 = _destination(HQ, 200.0, 150.0)
    assert fence.locate(*at_150, acc_m=49.0) is Where.OUTSIDE
    assert fence.locate(*at_150, acc_m=51.0) is Where.STRADDLES


SQUARE = ((31.0, 121.0), (31.0, 121.01), (31.01, 121.01), (31.01, 121.0))


@pytest.mark.parametrize(
    "point",
    [(31.0, 121.005), (31.005, 121.0), (31.01, 121.0072), (31.0, 121.0), (31.01, 121.01)],
    ids=["south-edge", "west-edge", "north-edge", "vertex-sw", "vertex-ne"],
)
def test_polygon_boundary_points_are_inside(point: tuple[float, float]) -> None:
    assert PolygonFence("sq", SQUARE).locate(*point) is Where.INSIDE


def test_polygon_just_outside_an_edge_is_outside() -> None:
    fence = PolygonFence("sq", SQUARE)
    south = _destination((31.0, 121.005), 180.0, 1.0)  # 1 m south of the south edge
    assert fence.locate(*south) is Where.OUTSIDE
    assert fence.locate(*south, acc_m=2.0) is Where.STRADDLES


def test_polygon_across_the_antimeridian() -> None:
    # A 2 km x 1 km block of Taveuni, Fiji, whose east half is at negative longitudes.
    fence = PolygonFence(
        "taveuni",
        ((-16.80, 179.99), (-16.80, -179.99), (-16.81, -179.99), (-16.81, 179.99)),
    )
    # 2.1 km by 1.1 km: not a band around the whole Earth the long way round.
    width_m = 0.02 * 111_195 * math.cos(math.radians(16.805))
    assert fence.area_m2 == pytest.approx(width_m * 0.01 * 111_195, rel=0.001)
    for lon in (180.0, -180.0, 179.995, -179.995):
        assert fence.locate(-16.805, lon) is Where.INSIDE, lon
    assert fence.locate(-16.805, 179.98) is Where.OUTSIDE
    assert fence.locate(-16.805, -179.98) is Where.OUTSIDE
    assert fence.locate(-16.805, 0.0) is Where.OUTSIDE


def test_circle_across_the_antimeridian() -> None:
    fence = Circle("dateline", -16.8, 179.9995, 200.0)
    east = (-16.8, -179.9995)  # about 107 m away, across the line
    assert fence.locate(*east) is Where.INSIDE
    assert fence.locate(-16.8, -179.99) is Where.OUTSIDE


def test_polygon_with_a_hole() -> None:
    # A campus ring around a courtyard that belongs to someone else.
    hole = ((31.003, 121.003), (31.003, 121.007), (31.007, 121.007), (31.007, 121.003))
    fence = PolygonFence("campus", SQUARE, (hole,))
    assert fence.locate(31.005, 121.005) is Where.OUTSIDE, "the courtyard is not ours"
    assert fence.locate(31.001, 121.001) is Where.INSIDE
    assert fence.locate(31.003, 121.005) is Where.INSIDE, "the hole's edge is ours"
    near_hole = _destination((31.003, 121.005), 180.0, 10.0)  # 10 m outside the hole
    assert fence.locate(*near_hole, acc_m=5.0) is Where.INSIDE
    assert fence.locate(*near_hole, acc_m=15.0) is Where.STRADDLES


def test_closed_and_open_rings_are_the_same_fence() -> None:
    closed = fence_from_spec("a", "polygon", {"shell": [list(c) for c in (*SQUARE, SQUARE[0])]})
    assert isinstance(closed, PolygonFence)
    assert closed.shell == SQUARE


@pytest.mark.parametrize(
    ("kind", "spec", "expected"),
    [
        (
            "polygon",
            {"shell": [[31.0, 121.0], [31.01, 121.01], [31.0, 121.01], [31.01, 121.0]]},
            "not a valid polygon",
        ),
        (
            "polygon",
            {"shell": [[121.0, 31.0], [121.5, 31.0], [121.5, 31.5]]},
            "latitude in -90..90",
        ),
        ("polygon", {"shell": [[30.0, 120.0], [30.0, 122.0], [32.0, 122.0]]}, "km across"),
        ("polygon", {"shell": [[31.0, 121.0], [31.0, 121.01]]}, "at least 3 vertices"),
        ("circle", {"center": [31.0, 121.0], "radius_m": 0}, "radius_m"),
        ("circle", {"center": [31.0, 121.0]}, "radius_m"),
        ("hexagon", {}, "kind must be"),
    ],
    ids=[
        "bowtie",
        "lon-lat-swapped",
        "too-big",
        "two-vertices",
        "zero-radius",
        "no-radius",
        "kind",
    ],
)
def test_unusable_fences_are_refused_with_a_reason(
    kind: str, spec: dict[str, object], expected: str
) -> None:
    with pytest.raises(GeofenceError) as info:
        fence_from_spec("bad", kind, spec)
    assert expected in info.value.message
    assert "'bad'" in info.value.message or kind == "hexagon"


def test_fences_file_reads_both_kinds_and_refuses_duplicates() -> None:
    text = """{"geofences": [
        {"name": "lobby", "kind": "circle", "center": [31.2304, 121.4737], "radius_m": 80},
        {"name": "campus", "kind": "polygon",
         "shell": [[31.0, 121.0], [31.0, 121.01], [31.01, 121.01]]}
    ]}"""
    fences = fences_from_json(text)
    assert [(f.name, f.kind) for f in fences] == [("lobby", "circle"), ("campus", "polygon")]
    with pytest.raises(GeofenceError, match="given twice"):
        fences_from_json(
            '[{"name": "a", "kind": "circle", "center": [0, 0], "radius_m": 5},'
            ' {"name": "a", "kind": "circle", "center": [0, 0], "radius_m": 5}]'
        )
