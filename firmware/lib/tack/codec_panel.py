"""The event bodies a terminal never or rarely sends: the meeting-room panel's (``checkin``,
``button``), the terminal's leave ``query`` and the ``receipt`` of a must-read notice (the
last two in ``tack.query`` and ``tack.codec_notice``; docs section 4).

Loaded by ``tack.codec.encode_event`` for those kinds only: a terminal sends punches, and loads
this code only for a rare query (``tack.query`` unloads it again), so the always-loaded codec
does not grow by a branch per kind.
"""

from micropython import const

from tack import why
from tack.codec import _int, _is_one_of, _keys, _str

_MAX_BUTTON_MINUTES = const(480)
BUTTONS = " book release extend checkin cancel "
# Every event kind (here, not in tack.codec, so a terminal that only punches does not hold it):
KINDS = " punch checkin button query receipt "
QUERIES = " leave "


def body(kind, body, add):
    """Append the canonical JSON of a checkin, button or query body, less its closing brace, to a
    message being built with ``add``; ValueError for what the gateway would refuse."""
    if kind == "query":  # the credential, as in a punch, then q
        _keys(body, " card emp q ", "query")
        if ("card" in body) == ("emp" in body):
            raise ValueError(why("co_qcred"))
        cred = "card" if "card" in body else "emp"
        q = body.get("q")
        if not _is_one_of(q, QUERIES):
            raise ValueError(why("co_query", QUERIES.strip(), q))
        add('{"%s":' % cred)
        add(_str(body[cred], cred))
        add(',"q":"%s"' % q)
        return
    if kind == "receipt":
        from tack import codec_notice

        codec_notice.body(kind, body, add)
        return
    if kind == "checkin":
        if list(body) != ["booking"]:
            raise ValueError(why("co_checkin", body))
        add('{"booking":')
        add(_str(body["booking"], "booking"))
        return
    if kind != "button":
        raise ValueError(why("co_kind", kind, KINDS.strip()))
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
