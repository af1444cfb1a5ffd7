"""The GPS check of a punch: each refusal with its reason code, and the checks' order."""

from __future__ import annotations

from devices.protocol.messages import GpsFix
from devices.protocol.reasons import ReasonCode
from gateway.verify.geo import Circle, Fix, GeoPolicy, GeoVerifier
from simulators.gps import _destination

HQ = (31.2304, 121.4737)
BEIJING = (39.9042, 116.4074)  # about 1,070 km from HQ
T0 = 1_764_000_000_000  # a punch time, UTC ms
MIN = 60_000


def verifier(**policy: object) -> GeoVerifier:
    return GeoVerifier([Circle("hq", *HQ, 150.0)], GeoPolicy(**policy))  # type: ignore[arg-type]


def check(
    v: GeoVerifier,
    fix: Fix | GpsFix | None,
    *,
    person: str = "p1",
    at: int = T0,
    received: int | None = None,
) -> ReasonCode:
    result = v.check(
        fix,
        person_id=person,
        device_id="term-1",
        punch_ts_ms=at,
        received_ms=at if received is None else received,
    )
    assert result.ok == (result.reason is ReasonCode.OK)
    return result.reason


def test_a_good_fix_from_the_wire_is_accepted_inside_the_fence() -> None:
    v = verifier()
    wire = GpsFix(312304017, 1214737035, 8, T0 - 2000)
    result = v.check(wire, person_id="p1", device_id="t", punch_ts_ms=T0, received_ms=T0)
    assert (result.ok, result.fence, result.checked) == (True, "hq", True)


def test_outside_the_fence() -> None:
    far = _destination(HQ, 90.0, 400.0)
    assert check(verifier(), Fix(*far, 10.0, T0)) is ReasonCode.OUTSIDE_GEOFENCE


def test_poor_accuracy_contain_policy_refuses_a_circle_across_the_edge() -> None:
    near_edge = _destination(HQ, 0.0, 120.0)
    v = verifier()
    assert check(v, Fix(*near_edge, 20.0, T0)) is ReasonCode.OK
    assert check(v, Fix(*near_edge, 40.0, T0), person="p2") is ReasonCode.GPS_INACCURATE


def test_poor_accuracy_max_policy_takes_the_centre_up_to_the_limit() -> None:
    near_edge = _destination(HQ, 0.0, 120.0)
    v = verifier(accuracy_policy="max", max_accuracy_m=50.0)
    assert check(v, Fix(*near_edge, 40.0, T0)) is ReasonCode.OK
    assert check(v, Fix(*HQ, 60.0, T0), person="p2") is ReasonCode.GPS_INACCURATE


def test_missing_accuracy_is_assumed_not_ignored() -> None:
    near_edge = _destination(HQ, 0.0, 120.0)  # 30 m from the edge
    assert check(verifier(missing_accuracy_m=50.0), Fix(*near_edge, None, T0)) is (
        ReasonCode.GPS_INACCURATE
    )
    assert check(verifier(missing_accuracy_m=20.0), Fix(*near_edge, None, T0)) is ReasonCode.OK


def test_mock_location_is_refused_and_unknown_is_not() -> None:
    v = verifier()
    assert check(v, Fix(*HQ, 5.0, T0, provider="gps", mock=True)) is ReasonCode.GPS_MOCK
    assert check(v, Fix(*HQ, 5.0, T0, provider=None, mock=None)) is ReasonCode.OK


def test_stale_fix_is_refused_but_a_late_upload_of_a_fresh_one_is_not() -> None:
    v = verifier(max_fix_age_s=120.0)
    assert check(v, Fix(*HQ, 5.0, T0 - 3 * MIN)) is ReasonCode.GPS_STALE
    # The punch sat in the terminal's outbox for an hour: the fix was fresh when it was taken.
    assert check(v, Fix(*HQ, 5.0, T0 - 10_000), person="p2", received=T0 + 60 * MIN) is (
        ReasonCode.OK
    )


def test_fix_from_the_future_is_refused() -> None:
    v = verifier(max_fix_ahead_s=30.0)
    assert check(v, Fix(*HQ, 5.0, T0 + 10 * MIN)) is ReasonCode.GPS_FUTURE
    assert check(v, Fix(*HQ, 5.0, T0 + 10_000), person="p2") is ReasonCode.OK


def test_impossible_speed_between_a_persons_fixes() -> None:
    v = GeoVerifier(
        [Circle("hq", *HQ, 150.0), Circle("bj", *BEIJING, 150.0)], GeoPolicy(max_speed_kmh=900.0)
    )
    assert check(v, Fix(*HQ, 5.0, T0)) is ReasonCode.OK
    ten_min = T0 + 10 * MIN
    assert check(v, Fix(*BEIJING, 5.0, ten_min), at=ten_min) is ReasonCode.GPS_IMPOSSIBLE_SPEED
    # Someone else may be in Beijing; and the same person may be, three hours later (a flight).
    assert check(v, Fix(*BEIJING, 5.0, ten_min), person="p2", at=ten_min) is ReasonCode.OK
    three_h = T0 + 180 * MIN
    assert check(v, Fix(*BEIJING, 5.0, three_h), at=three_h) is ReasonCode.OK


def test_speed_check_allows_for_both_accuracies() -> None:
    v = GeoVerifier([Circle("campus", *HQ, 500.0)], GeoPolicy(max_speed_kmh=900.0))
    assert check(v, Fix(*HQ, 60.0, T0)) is ReasonCode.OK
    jitter = _destination(HQ, 45.0, 100.0)  # 100 m "in" one second: within 60 + 60 m
    assert check(v, Fix(*jitter, 60.0, T0 + 1000), at=T0 + 1000) is ReasonCode.OK
    jump = _destination(HQ, 45.0, 550.0)  # 330 m beyond both accuracies in one second
    assert check(v, Fix(*jump, 60.0, T0 + 2000), at=T0 + 2000) is (ReasonCode.GPS_IMPOSSIBLE_SPEED)


def test_a_refused_fix_does_not_become_the_last_position() -> None:
    v = verifier()
    assert check(v, Fix(*BEIJING, 5.0, T0)) is ReasonCode.OUTSIDE_GEOFENCE
    assert check(v, Fix(*HQ, 5.0, T0 + MIN), at=T0 + MIN) is ReasonCode.OK


def test_seeded_positions_survive_a_restart() -> None:
    v = GeoVerifier([Circle("bj", *BEIJING, 150.0)])
    v.seed({"p1": Fix(*HQ, 5.0, T0)})
    assert check(v, Fix(*BEIJING, 5.0, T0 + MIN), at=T0 + MIN) is ReasonCode.GPS_IMPOSSIBLE_SPEED


def test_mock_is_named_before_outside() -> None:
    assert check(verifier(), Fix(*BEIJING, 5.0, T0, mock=True)) is ReasonCode.GPS_MOCK


def test_no_fix_is_refused_only_when_required() -> None:
    assert check(verifier(), None) is ReasonCode.OK
    assert check(verifier(gps_required=True), None) is ReasonCode.GPS_MISSING


def test_a_site_without_fences_does_not_check() -> None:
    result = GeoVerifier([]).check(
        Fix(*BEIJING, 5.0, T0, mock=True),
        person_id="p1",
        device_id="t",
        punch_ts_ms=T0,
        received_ms=T0,
    )
    assert (result.ok, result.checked) == (True, False)


def test_every_refusal_has_terminal_text() -> None:
    v = verifier()
    result = v.check(
        Fix(*BEIJING, 5.0, T0), person_id="p", device_id="t", punch_ts_ms=T0, received_ms=T0
    )
    assert result.text == "Outside the work area"
    assert "Beijing" not in result.text
    assert result.detail
