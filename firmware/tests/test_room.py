"""The meeting-room panel's reading of its schedule (tack.room), run inside MicroPython:
which booking holds the room, which one waits for its check-in, and the LED's colour."""

from tack import room

M = 60000
T0 = 1767225600000  # 2026-01-01 00:00 UTC


def item(bid, start_min, end_min, checked=False, st=None, title="Sync"):
    return {"id": bid, "title": title, "start": T0 + start_min * M, "end": T0 + end_min * M,
            "by": None, "in": checked, "st": st}


def sched(items, op=None, rel=None, priv=False):
    return {"room": "5F-A", "ts": T0, "items": items, "dropped": 0, "open": op, "rel": rel,
            "priv": priv}


def at(minutes):
    return T0 + minutes * M


def test_no_schedule_is_free_and_green():
    assert room.state(None, at(0), {}) == (None, None, None, "green")


def test_free_until_the_check_in_window_opens_then_amber():
    s = sched([item("b1", 60, 90)])
    current, nxt, pending, colour = room.state(s, at(50), {})
    assert (current, nxt["id"], pending, colour) == (None, "b1", None, "green")
    # The default window: 5 minutes before the start.
    assert room.state(s, at(55), {})[2:] == (s["items"][0], "amber")
    assert room.state(s, at(54), {})[3] == "green"


def test_the_schedules_open_sets_the_window():
    s = sched([item("b1", 60, 90)], op=10)
    assert room.state(s, at(50), {})[3] == "amber"
    assert room.state(s, at(49), {})[3] == "green"
    s = sched([item("b1", 60, 90)], op=0)
    assert room.state(s, at(59), {})[3] == "green"
    assert room.state(s, at(60), {})[3] == "amber"


def test_the_gateways_open_state_turns_amber_too():
    s = sched([item("b1", 60, 90, st="open")])
    assert room.state(s, at(30), {})[3] == "amber"


def test_a_meeting_not_checked_in_is_amber_then_red_once_checked_in():
    s = sched([item("b1", 0, 60)], rel=10)
    current, _, pending, colour = room.state(s, at(3), {})
    assert (current["id"], pending["id"], colour) == ("b1", "b1", "amber")
    # Accepted by the gateway before the next schedule came: red at once.
    assert room.state(s, at(3), {"b1": True})[2:] == (None, "red")
    s = sched([item("b1", 0, 60, checked=True)], rel=10)
    assert room.state(s, at(3), {})[2:] == (None, "red")
    s = sched([item("b1", 0, 60, st="in")], rel=10)
    assert room.state(s, at(3), {})[3] == "red"


def test_a_no_show_stops_holding_the_room_at_the_release_time():
    s = sched([item("b1", 0, 60), item("b2", 90, 120)], rel=10)
    assert room.state(s, at(9), {})[0]["id"] == "b1"
    current, nxt, pending, colour = room.state(s, at(10), {})
    assert (current, nxt["id"], pending, colour) == (None, "b2", None, "green")
    # Without `rel` the panel does not guess: the booking holds the room until the gateway says.
    s = sched([item("b1", 0, 60)])
    assert room.state(s, at(30), {})[3] == "amber"


def test_a_checked_in_meeting_is_red_until_its_end():
    s = sched([item("b1", 0, 60, checked=True), item("b2", 60, 90)], rel=10)
    assert room.state(s, at(59), {})[0]["id"] == "b1"
    current, _, pending, colour = room.state(s, at(60), {})
    assert (current["id"], pending["id"], colour) == ("b2", "b2", "amber")
    assert room.state(s, at(90), {}) == (None, None, None, "green")


def test_the_next_booking_in_its_window_is_pending_while_the_room_is_free():
    s = sched([item("b1", 0, 30, checked=True), item("b2", 33, 60)], rel=10)
    current, nxt, pending, colour = room.state(s, at(29), {})
    assert (current["id"], nxt["id"], pending, colour) == ("b1", "b2", None, "red")
    current, nxt, pending, colour = room.state(s, at(30), {})
    assert (current, pending["id"], colour) == (None, "b2", "amber")


def test_a_meeting_checked_in_early_holds_the_room_from_then():
    s = sched([item("b1", 60, 90)])
    assert room.state(s, at(57), {})[2:] == (s["items"][0], "amber")
    current, nxt, pending, colour = room.state(s, at(57), {"b1": True})
    assert (current["id"], nxt, pending, colour) == ("b1", None, None, "red")
    # Outside its window a checked-in booking is still only the next one.
    s = sched([item("b1", 60, 90, checked=True)])
    assert room.state(s, at(50), {})[:2] == (None, s["items"][0])


def test_starts_in_counts_whole_minutes_from_fifteen():
    b = item("b1", 60, 90)
    assert room.starts_in(b, at(44)) is None
    assert room.starts_in(b, at(45)) == 15
    assert room.starts_in(b, at(55)) == 5
    assert room.starts_in(b, at(55) + 1) == 5  # 4 min 59.999 s: still "5 min"
    assert room.starts_in(b, at(60)) is None


def test_book_now_lengths_cycle():
    seen = []
    m = None
    for _ in range(5):
        m = room.next_length(m)
        seen.append(m)
    assert seen == [15, 30, 45, 60, 15]
