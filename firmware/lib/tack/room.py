"""What a meeting-room panel shows at a moment, from its schedule and its clock: only the panel
imports it (docs/firmware.md, "The meeting-room panel").

The gateway's room service decides (docs/meeting-rooms.md); this is the panel's own reading of
the last schedule it has, so that it stays right with no gateway: the LED turns amber when
check-in opens (``open`` minutes before the start, 5 when the schedule does not say), a
booking nobody checked in to stops holding the room ``rel`` minutes after its start, and
"starts in N min" counts down from ``start``.
"""

from micropython import const

MINUTE_MS = const(60000)
OPEN_MIN = const(5)  # check-in opens this long before the start when the schedule has no `open`
SOON_MIN = const(15)  # "starts in N min" from this close
LENGTHS = (15, 30, 45, 60)  # book now: each press of Book moves to the next
EXTEND_MIN = const(15)

FREE = "green"
BUSY = "red"
PENDING = "amber"


def checked_in(item, checked):
    """Someone checked in: the schedule says so, or this panel's check-in was accepted."""
    return item["in"] or item["st"] == "in" or item["id"] in checked


def state(schedule, now, checked):
    """``(current, nxt, pending, colour)`` at ``now`` (Unix ms).

    ``current`` is the booking holding the room (under way, or checked in to early, in its
    check-in window), ``nxt`` the next one to start, ``pending`` the
    one whose check-in is open and not done (the current one, or the next one once its window
    opens), ``colour`` the LED's: amber while something is pending, else red when the room is
    held, else green. ``checked`` holds the ids this panel checked in to since the schedule
    came.
    """
    current = nxt = None
    opens = OPEN_MIN
    if schedule is not None:
        rel = schedule["rel"]
        if schedule["open"] is not None:
            opens = schedule["open"]
        for item in schedule["items"]:
            if item["end"] <= now:
                continue
            # Checked in early, in its check-in window: the meeting holds the room already.
            if item["start"] <= now or (item["start"] - now <= opens * MINUTE_MS and checked_in(item, checked)):
                if current is not None:
                    continue
                if rel is not None and now >= item["start"] + rel * MINUTE_MS and not checked_in(item, checked):
                    continue  # a no-show: released at the gateway, which drops it from the list
                current = item
            elif nxt is None:
                nxt = item
    pending = None
    if current is not None:
        if not checked_in(current, checked):
            pending = current
    elif nxt is not None and not checked_in(nxt, checked):
        if nxt["st"] == "open" or nxt["start"] - now <= opens * MINUTE_MS:
            pending = nxt
    if pending is not None:
        colour = PENDING
    elif current is not None:
        colour = BUSY
    else:
        colour = FREE
    return current, nxt, pending, colour


def starts_in(item, now):
    """Whole minutes (rounded up) until ``item`` starts, when that is at most SOON_MIN; else None."""
    left = item["start"] - now
    if left <= 0 or left > SOON_MIN * MINUTE_MS:
        return None
    return (left + MINUTE_MS - 1) // MINUTE_MS


def next_length(minutes):
    """The book-now length after ``minutes`` (None: the first press), round the list."""
    if minutes is None:
        return LENGTHS[0]
    for i in range(len(LENGTHS) - 1):
        if LENGTHS[i] == minutes:
            return LENGTHS[i + 1]
    return LENGTHS[0]
