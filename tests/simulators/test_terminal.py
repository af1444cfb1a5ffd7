"""The simulated terminal's outbox rules, against a real Mosquitto and a stand-in ack peer."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import (
    AckStatus,
    Envelope,
    ReasonCode,
    decode_event,
    decode_presence,
    parse_topic,
    topic,
)
from devices.protocol.topics import valid_id
from simulators.devices import Outbox, Terminal, TerminalClosedError, TerminalConfig, new_msg_id
from simulators.mosquitto import Mosquitto
from tests.fixtures.ack_responder import AckResponder, accept, gateway_like, reject

WAIT_S = 10.0

MakeTerminal = Callable[..., Terminal]


@pytest.fixture
def make_terminal(tmp_path: Path, site: str) -> Iterator[MakeTerminal]:
    made: list[Terminal] = []

    def make(broker: Mosquitto, device_id: str = "term-001", **kw: object) -> Terminal:
        cfg = TerminalConfig(
            site=site,
            device_id=device_id,
            state_dir=tmp_path / device_id,
            host=broker.host,
            port=broker.port,
            **kw,  # type: ignore[arg-type]
        )
        terminal = Terminal(cfg)
        made.append(terminal)
        terminal.start()
        assert terminal.wait_connected_sync(WAIT_S)
        return terminal

    yield make
    for terminal in made:
        terminal.stop()


# -- outbox on its own --------------------------------------------------------------------------


def _env(seq: int, created_ms: int) -> Envelope:
    from devices.protocol import CredentialType, PunchBody

    return Envelope(
        "term-001", new_msg_id(), seq, created_ms, "punch", PunchBody(CredentialType.CARD, "C0001")
    )


def test_outbox_keeps_seq_boot_and_entries_across_reopen(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        assert box.bump_boot() == 1
        first = box.append(_env)
        second = box.append(_env)
        assert (first.seq, second.seq) == (1, 2)
        assert box.remove(first.msg_id)
        assert not box.remove(first.msg_id)
    with Outbox(tmp_path) as box:
        assert box.bump_boot() == 2
        assert [e.seq for e in box.pending()] == [2]
        assert (
            decode_event(
                parse_topic(topic("s", "term-001", "evt", "punch")), box.pending()[0].payload
            ).msg_id
            == second.msg_id
        )
        assert box.append(_env).seq == 3
        assert box.depth() == 2


def test_outbox_append_that_fails_leaves_nothing(tmp_path: Path) -> None:
    def broken(seq: int, created_ms: int) -> Envelope:
        raise ValueError("no")

    with Outbox(tmp_path) as box:
        with pytest.raises(ValueError, match="no"):
            box.append(broken)
        assert box.depth() == 0
        assert box.append(_env).seq == 1


def test_msg_ids_are_valid_unique_and_time_sorted() -> None:
    ids = [new_msg_id() for _ in range(200)]
    assert len(set(ids)) == 200
    assert all(valid_id(i, 64) and len(i) == 26 for i in ids)
    # the first 10 characters encode the millisecond; they never go backwards
    assert [i[:10] for i in ids] == sorted(i[:10] for i in ids)


# -- terminal -----------------------------------------------------------------------------------


def test_accepted_punches_leave_the_outbox(
    mosquitto: Mosquitto,
    site: str,
    make_terminal: MakeTerminal,
    ack_responder: Callable[..., AckResponder],
) -> None:
    responder = ack_responder(mosquitto, site)
    terminal = make_terminal(mosquitto)
    handles = [terminal.punch("C0001"), terminal.punch(emp="E0002"), terminal.punch("C0003")]
    acks = [h.result(WAIT_S) for h in handles]
    assert [a.status for a in acks] == [AckStatus.ACCEPTED] * 3
    assert [h.seq for h in handles] == [1, 2, 3]
    assert [e.seq for e in responder.first_copies("term-001")] == [1, 2, 3]
    assert responder.received[1].body.credential == "E0002"
    stats = terminal.stats()
    assert (stats.sent, stats.accepted, stats.outbox_depth, stats.boot) == (3, 3, 0, 1)
    assert stats.last_verdict == "Welcome C0003"
    assert stats.last_ack_latency_ms is not None
    assert len(terminal.ack_latencies_ms()) == 3
    assert terminal.wait_drained_sync(WAIT_S)
    terminal.stop()
    with Outbox(terminal.config.state_dir) as box:
        assert box.depth() == 0


def test_final_rejection_leaves_the_outbox(
    mosquitto: Mosquitto,
    site: str,
    make_terminal: MakeTerminal,
    ack_responder: Callable[..., AckResponder],
) -> None:
    ack_responder(mosquitto, site, lambda env, copy: reject(env, ReasonCode.UNKNOWN_CREDENTIAL))
    terminal = make_terminal(mosquitto)
    ack = terminal.punch("C9999").result(WAIT_S)
    assert (ack.status, ack.reason) == (AckStatus.REJECTED, ReasonCode.UNKNOWN_CREDENTIAL)
    stats = terminal.stats()
    assert stats.rejected == {"unknown_credential": 1}
    assert stats.outbox_depth == 0
    assert stats.last_verdict == "Card not known"


def test_transient_rejection_is_kept_and_resent_after_retry_s(
    mosquitto: Mosquitto,
    site: str,
    make_terminal: MakeTerminal,
    ack_responder: Callable[..., AckResponder],
) -> None:
    def busy_once(env: Envelope, copy: int) -> object:
        return reject(env, ReasonCode.BUSY, retry_s=0.3) if copy == 1 else accept(env)

    responder = ack_responder(mosquitto, site, busy_once)
    terminal = make_terminal(mosquitto)
    handle = terminal.punch("C0001")
    ack = handle.result(WAIT_S)
    assert ack.status is AckStatus.ACCEPTED
    copies = [e for e in responder.received if e.msg_id == handle.msg_id]
    assert len(copies) == 2
    assert {(e.msg_id, e.seq) for e in copies} == {(handle.msg_id, 1)}
    stats = terminal.stats()
    assert stats.deferred == {"busy": 1}
    assert (stats.accepted, stats.resent, stats.outbox_depth) == (1, 1, 0)


def test_missing_ack_is_resent_after_ack_timeout_with_same_id_and_seq(
    mosquitto: Mosquitto,
    site: str,
    make_terminal: MakeTerminal,
    ack_responder: Callable[..., AckResponder],
) -> None:
    responder = ack_responder(
        mosquitto, site, lambda env, copy: None if copy == 1 else gateway_like(env, copy)
    )
    terminal = make_terminal(mosquitto, ack_timeout_s=0.4)
    handle = terminal.punch("C0001")
    ack = handle.result(WAIT_S)
    # the gateway-like peer calls a second copy a duplicate: the first was "stored", its ack lost
    assert ack.status is AckStatus.DUPLICATE
    copies = [e for e in responder.received if e.msg_id == handle.msg_id]
    assert len(copies) == 2
    assert copies[0] == copies[1]
    stats = terminal.stats()
    assert (stats.duplicate, stats.resent, stats.outbox_depth) == (1, 1, 0)


def test_restart_reloads_and_drains_the_outbox_and_seq_continues(
    mosquitto: Mosquitto, site: str, tmp_path: Path, ack_responder: Callable[..., AckResponder]
) -> None:
    silent = True

    def policy(env: Envelope, copy: int) -> object:
        return None if silent else gateway_like(env, copy)

    responder = ack_responder(mosquitto, site, policy)
    cfg = TerminalConfig(
        site=site,
        device_id="term-001",
        state_dir=tmp_path,
        host=mosquitto.host,
        port=mosquitto.port,
    )
    first = Terminal(cfg)
    first.start()
    assert first.wait_connected_sync(WAIT_S)
    handles = [first.punch(f"C000{n}") for n in range(1, 4)]
    assert responder.wait_for(lambda r: len(r.received) == 3, WAIT_S)
    first.stop(graceful=False)  # power cut with three punches unacknowledged
    with pytest.raises(TerminalClosedError):
        handles[0].result(0)
    with Outbox(tmp_path) as box:
        assert [e.seq for e in box.pending()] == [1, 2, 3]

    silent = False
    second = Terminal(cfg)
    second.start()
    try:
        assert second.wait_drained_sync(WAIT_S)
        assert second.punch("C0004").result(WAIT_S).status is AckStatus.ACCEPTED
        stats = second.stats()
    finally:
        second.stop()
    assert stats.boot == 2
    assert stats.reloaded == 3
    assert (stats.sent, stats.first_seq, stats.last_seq) == (1, 4, 4)
    # the reloaded three reached the peer again, with their original ids
    assert [e.msg_id for e in responder.first_copies("term-001")][:3] == [h.msg_id for h in handles]
    assert stats.accepted + stats.duplicate == 4
    with Outbox(tmp_path) as box:
        assert box.depth() == 0


def test_broker_restart_delivers_everything_in_seq_order(
    mosquitto_factory: Callable[[], Mosquitto],
    make_terminal: MakeTerminal,
    site: str,
    ack_responder: Callable[..., AckResponder],
) -> None:
    broker = mosquitto_factory()
    responder = ack_responder(broker, site)
    # The restarted broker has forgotten the peer's subscription, and copies published before it
    # subscribes again are lost; a later seq could then arrive first. The terminals retry after
    # 2 s, the peer after 1 s, so the peer is back first.
    terminals = [
        make_terminal(broker, d, ack_timeout_s=1.0, reconnect_min_s=2)
        for d in ("term-001", "term-002")
    ]
    for terminal in terminals:
        for n in range(3):
            terminal.punch(f"C000{n + 1}")
    for terminal in terminals:
        assert terminal.wait_drained_sync(WAIT_S)

    broker.stop()
    for terminal in terminals:
        for n in range(3):
            terminal.punch(f"C001{n}")  # stored while the broker is gone
        assert terminal.stats().outbox_depth >= 3
    broker.start()

    assert responder.wait_subscribed(2, WAIT_S)
    for terminal in terminals:
        assert terminal.wait_drained_sync(20.0), terminal.stats()
    for terminal in terminals:
        seqs = [e.seq for e in responder.first_copies(terminal.device_id)]
        assert seqs == [1, 2, 3, 4, 5, 6]
        stats = terminal.stats()
        assert stats.accepted + stats.duplicate == 6
        assert stats.reconnects >= 1


def test_presence_online_then_last_will_on_power_cut(
    mosquitto: Mosquitto, site: str, make_terminal: MakeTerminal
) -> None:
    seen: list[bytes] = []
    got = threading.Condition()

    def on_message(client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        with got:
            seen.append(bytes(msg.payload))
            got.notify_all()

    watcher = mqtt.Client(CallbackAPIVersion.VERSION2)
    watcher.on_message = on_message
    watcher.connect(mosquitto.host, mosquitto.port)
    watcher.subscribe(topic(site, "term-001", "state", "online"), qos=1)
    watcher.loop_start()
    try:
        terminal = make_terminal(mosquitto)
        with got:
            assert got.wait_for(lambda: seen and decode_presence(seen[-1]).online, WAIT_S)
        online = decode_presence(seen[-1])
        assert (online.boot, online.firmware) == (1, "sim-0.1")
        terminal.stop(graceful=False)
        with got:
            assert got.wait_for(lambda: not decode_presence(seen[-1]).online, WAIT_S)
        assert decode_presence(seen[-1]).boot == 1
    finally:
        watcher.disconnect()
        watcher.loop_stop()


async def test_async_helpers(
    mosquitto: Mosquitto, site: str, tmp_path: Path, ack_responder: Callable[..., AckResponder]
) -> None:
    ack_responder(mosquitto, site)
    cfg = TerminalConfig(
        site=site,
        device_id="term-009",
        state_dir=tmp_path,
        host=mosquitto.host,
        port=mosquitto.port,
    )
    async with Terminal(cfg) as terminal:
        assert await terminal.wait_connected(WAIT_S)
        ack = await terminal.punch_and_wait("C0001", timeout_s=WAIT_S)
        assert ack.status is AckStatus.ACCEPTED
        handle = terminal.punch(emp="E0001")
        assert (await handle.wait(WAIT_S)).status is AckStatus.ACCEPTED
        assert await terminal.wait_drained(WAIT_S)


def test_misuse_is_refused(tmp_path: Path, site: str) -> None:
    with pytest.raises(ValueError, match="device id"):
        Terminal(TerminalConfig(site=site, device_id="bad/id", state_dir=tmp_path))
    terminal = Terminal(TerminalConfig(site=site, device_id="t1", state_dir=tmp_path, port=1))
    with pytest.raises(RuntimeError, match="not running"):
        terminal.punch("C0001")
    terminal.start()
    try:
        with pytest.raises(ValueError, match="exactly one"):
            terminal.punch("C0001", emp="E0001")
        with pytest.raises(RuntimeError, match="already started"):
            terminal.start()
        # nothing listens on port 1: the punch is stored, not lost
        handle = terminal.punch("C0001")
        assert terminal.stats().outbox_depth == 1
    finally:
        terminal.stop()
    with pytest.raises(TerminalClosedError):
        handle.result(0)
    with Outbox(tmp_path) as box:
        assert box.depth() == 1
