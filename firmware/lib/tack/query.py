"""The clock terminal's leave key: sending the leave-balance query (docs/protocol.md, "The
query body"; its bytes are written by ``tack.codec_panel``) and saying the answer.

A person presses the leave key, then shows a card or types their number: the terminal sends a
``query`` instead of a punch, and shows the ack's verdict (``cls`` ``balance``) in its own
language. Rarely used, so loaded only for that and let go again (``unload``; ``_answer`` keeps
it until the answer is in): a terminal nobody asks keeps its heap for punches, and one that was
asked does not keep this code for the rest of the day.
"""

import time

from micropython import const

from tack import codec, unload

# The terminal's screen modes (clock_terminal/main.py): keep the numbers the same.
_PENDING = const(1)
_VERDICT = const(2)
_NOTICE = const(3)
_ASK = const(4)
_ASK_MS = const(10000)  # how long the leave key waits for a card


def on_input(dev, kind, value):
    """The leave key (``kind`` "button", ``value`` "leave"): show the prompt, and for ``_ASK_MS`` the next card
    or number asks rather than punches. A card or number shown then: send the query and wait
    for its ack (whose verdict the terminal shows), or say why not: offline (the answer is for
    the person now, so nothing waits to be sent later), a misread card, or a full outbox.

    ``dev`` is the ``ClockTerminal``; its screen modes are passed as numbers, the ones
    ``clock_terminal/main.py`` defines (there they are ``const()``, so they cost no heap).
    """
    try:
        if kind == "button":
            if value != "leave":  # a terminal has no other button
                return
            dev.notice = dev.t("query_leave")
            dev.mode = _ASK
            dev.mode_until = time.ticks_add(time.ticks_ms(), _ASK_MS)
            return
        dev.notice = _ask(dev, kind, value)
        dev._show(_NOTICE if dev.notice else _PENDING, None)
    finally:
        unload("tack.codec_panel")  # loaded by the codec for the query's body
        unload("tack.query")


def _ask(dev, kind, credential):
    from tack.outbox import OutboxFull  # here: the codec's tests load this module without it

    if not dev.link.connected:
        return dev.t("query_offline")
    if not codec.valid_id(credential, 32):
        return dev.t("reason_invalid_value")
    msg_id = codec.new_msg_id()
    seq = dev.state.next_seq()
    payload = codec.encode_event(
        msg_id, dev.device_id, seq, dev.clock.now_ms(), "query", {kind: credential, "q": "leave"}
    )
    try:
        dev.outbox.append(msg_id, "query", payload)
    except OutboxFull:
        return dev.t("outbox_full")
    dev.current = msg_id
    dev.link.on_ack = _answer(dev, msg_id)
    dev.link.wake()
    dev.hal.event("queued", {"id": msg_id, "seq": seq, "kind": "query", "outbox": len(dev.outbox)})
    return ""


def _answer(dev, msg_id):
    """The link's ack handler while query ``msg_id`` waits for its answer: that ack's
    ``balance`` verdict is said in the terminal's language ("Leave left: %s", or "No leave
    balance on file" for the gateway's "none on file"); every other ack, and a refusal of the
    query, goes to the terminal's own handler, which says a reason as for a punch.

    Done here rather than in the terminal's ``on_ack`` so that a terminal nobody asks holds none
    of it; and this module stays loaded (through this function) until the answer is in, because
    loading code while an ack is being read can run a 64 KiB heap out.
    """

    def on_ack(ack, action):
        if ack["msg_id"] != msg_id or action == "keep":
            dev.on_ack(ack, action)
            return
        dev.link.on_ack = dev.on_ack  # answered: this module can go
        v = ack.get("verdict") or {}
        if v.get("cls") != "balance" or dev.current != msg_id:
            dev.on_ack(ack, action)
            return
        text = v["text"]
        if text == "none on file":
            text = dev.t("verdict_balance_none")
        else:
            text = dev.t("verdict_balance", text)
        dev.verdict = (v["ok"], v.get("name"), text)
        dev.current = None
        dev._show(_VERDICT, None)

    return on_ack
