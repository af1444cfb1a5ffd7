"""The meeting-room panel's event bodies (``checkin``, ``button``; docs section 4).

Loaded by ``tack.codec.encode_event`` for those kinds only: a terminal sends punches and never
needs this code.
"""

from micropython import const

from tack import why
from tack.codec import _int, _is_one_of, _keys, _str

_MAX_BUTTON_MINUTES = const(480)
BUTTONS = " book release extend checkin cancel "


def body(kind, body, add):
    """Append the canonical JSON of a checkin or button body, less its closing brace, to a
    message being built with ``add``; ValueError for what the gateway would refuse."""
    if kind == "checkin":
        if list(body) != ["booking"]:
            raise ValueError(why("co_checkin", body))
        add('{"booking":')
        add(_str(body["booking"], "booking"))
        return
    _keys(body, " button booking minutes ", "button")
    button = body.get("button")
    if not _is_one_of(button, BUTTONS):
        raise ValueError(why("co_button", BUTTONS.strip(), button))
    add('{"button":"%s"' % button)
    if body.get("booking") is not None:
        add(',"booking":')
        add(_str(body["booking"], "booking"))
    if body.get("minutes") is not None:
        add(',"minutes":')
        add(_int(body["minutes"], "minutes", 1, _MAX_BUTTON_MINUTES))
