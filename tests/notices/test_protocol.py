"""``cmd/notice`` as the gateway writes it (``encode_notice``) and reads back, beyond the
shared vectors: what it refuses, and property tests against the schema."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.protocol import MAX_CMD_BYTES, NoticeItem, Notices, decode_notice, dumps, encode_notice
from devices.protocol.limits import MAX_NOTICE_ITEMS, MAX_SAFE_INT
from devices.protocol.topics import valid_id
from tests.protocol.support import validator

_SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def _item(n: int = 1, **over: Any) -> NoticeItem:
    fields: dict[str, Any] = {
        "notice_id": f"n-{n}",
        "title": "T",
        "text": "read me",
        "ts_ms": 1,
        "sender": None,
    }
    fields.update(over)
    return NoticeItem(**fields)


@pytest.mark.parametrize(
    ("items", "why"),
    [
        ([_item(n) for n in range(5)], "at most 4"),
        ([_item(notice_id="n 1")], "notice id"),
        ([_item(notice_id="N" * 65)], "notice id"),
        ([_item(title="t" * 65)], "title over 64"),
        ([_item(text="")], "text is empty"),
        ([_item(text=" \n")], "text is empty"),
        ([_item(text="x" * 281)], "text over 280"),
        ([_item(sender="s" * 65)], "sender over 64"),
        ([_item(ts_ms=-1)], "ts must be"),
        # Control characters are six bytes each in JSON: four such notices pass 8192 bytes.
        (
            [_item(n, title="\x01" * 64, text="\x01" * 280, sender="\x01" * 64) for n in range(4)],
            "send fewer items",
        ),
    ],
    ids=[
        "five",
        "bad_id",
        "long_id",
        "long_title",
        "empty_text",
        "blank_text",
        "long_text",
        "long_sender",
        "negative_ts",
        "too_many_bytes",
    ],
)
def test_encode_notice_refuses_what_a_device_could_not_show_whole(
    items: list[NoticeItem], why: str
) -> None:
    with pytest.raises(ValueError, match=why):
        encode_notice(1, items)


def test_four_notices_of_the_longest_non_ascii_text_fit() -> None:
    items = [
        _item(n, title="通" * 64, text="知" * 280, sender="张" * 64, ts_ms=MAX_SAFE_INT)
        for n in range(MAX_NOTICE_ITEMS)
    ]
    assert len(encode_notice(MAX_SAFE_INT, items)) <= MAX_CMD_BYTES


_items = st.builds(
    NoticeItem,
    notice_id=st.sampled_from(["n-1", "n-2", "N" * 64, "0"]),
    title=st.text(max_size=64),
    text=st.text(min_size=1, max_size=280).filter(lambda t: bool(t.strip())),
    ts_ms=st.integers(min_value=0, max_value=MAX_SAFE_INT),
    sender=st.none() | st.text(max_size=64),
)


@_SETTINGS
@given(st.integers(min_value=0, max_value=MAX_SAFE_INT), st.lists(_items, max_size=4))
def test_every_list_the_gateway_can_write_validates_and_reads_back(
    ts_ms: int, items: list[NoticeItem]
) -> None:
    try:
        payload = encode_notice(ts_ms, items)
    except ValueError:
        # Only for size: four texts of characters JSON escapes can pass 8192 bytes.
        assert len(dumps(Notices(ts_ms, tuple(items)).to_wire())) > MAX_CMD_BYTES
        return
    assert validator("notice").is_valid(json.loads(payload)), payload
    assert decode_notice(payload) == Notices(ts_ms, tuple(items))


_ITEM: dict[str, Any] = {"id": "n-1", "title": "t", "text": "x", "ts": 1, "from": None}
_any = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)


@_SETTINGS
@given(
    st.lists(
        st.fixed_dictionaries({}, optional={k: st.just(v) | _any for k, v in _ITEM.items()}) | _any,
        max_size=8,
    )
)
def test_a_device_reads_any_list_into_notices_it_can_show(items: list[Any]) -> None:
    read = decode_notice(json.dumps({"v": 1, "ts": 1, "items": items}).encode())
    assert len(read.items) + read.dropped == len(items)
    assert len(read.items) <= MAX_NOTICE_ITEMS
    for item in read.items:
        assert valid_id(item.notice_id, 64)
        assert isinstance(item.text, str)


def test_the_gateway_sends_fewer_notices_when_four_do_not_fit() -> None:
    from gateway.notices.service import _encode
    from gateway.notices.store import Notice

    heavy = [Notice(f"n-{n}", "\x01" * 64, "\x01" * 280, "\x01" * 64, n) for n in range(4)]
    payload, sent = _encode(heavy)
    assert len(payload) <= MAX_CMD_BYTES
    assert sent == ["n-0", "n-1", "n-2"]  # the newest waits for an older one to be read
    assert [i.notice_id for i in decode_notice(payload).items] == sent
