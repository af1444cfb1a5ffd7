"""Screenshots of the real firmware's screens, for docs/firmware.md: ``make screenshots``.

Each picture is what the device itself wrote with its Unix HAL (``screen_png``): the
applications run unchanged in ``micropython`` against a Mosquitto started here. A small
responder stands in for the gateway, answering punches with a verdict, and the panel gets a
retained schedule, so the screens show what a person sees at the door and at a meeting room.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devices.protocol import ScheduleItem, encode_schedule, encode_time, topic
from simulators.devices.firmware import FirmwareConfig, FirmwareDevice, ensure_font
from simulators.mosquitto import Mosquitto

SITE = "hq"
NAMES = {"C0001": "张伟", "C0002": "Li Wei"}


def _responder(broker: Mosquitto) -> mqtt.Client:
    """Answers every punch as a gateway would (accepted, with the person's name) and gives the
    time to every device that comes online."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)

    def on_message(c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
        if m.topic.endswith("/state/online"):  # a birth: set the device's clock, as a gateway does
            if m.payload and json.loads(m.payload).get("online"):
                device_id = m.topic.split("/")[3]
                c.publish(
                    topic(SITE, device_id, "cmd", "time"), encode_time(int(time.time() * 1000))
                )
            return
        env = json.loads(m.payload)
        name = NAMES.get(env["body"].get("card", ""))
        verdict = {"ok": name is not None, "name": name, "text": "Clocked in"}
        ack = {
            "v": 1,
            "id": env["id"],
            "seq": env["seq"],
            "status": "accepted" if name else "rejected",
            "reason": "ok" if name else "unknown_credential",
            "msg": "",
            "verdict": verdict,
        }
        c.publish(topic(SITE, env["dev"], "cmd", "ack"), json.dumps(ack), 1)

    def on_connect(c: mqtt.Client, *_: object) -> None:  # again after a broker restart
        c.subscribe(f"tack/v1/{SITE}/+/evt/punch", 1)
        c.subscribe(f"tack/v1/{SITE}/+/state/online", 1)

    client.on_message = on_message
    client.on_connect = on_connect
    client.connect(broker.host, broker.port)
    client.loop_start()
    _connected(client)
    return client


def _connected(client: mqtt.Client) -> None:
    deadline = time.monotonic() + 15
    while not client.is_connected():
        if time.monotonic() > deadline:
            raise TimeoutError("the responder could not connect to the broker")
        time.sleep(0.05)


def _settle(dev: FirmwareDevice, text: str) -> None:
    dev.wait_for(
        lambda _: any(text in line for line in dev.screen()), timeout_s=15, what=repr(text)
    )
    time.sleep(0.3)  # the PNG is written with the screen; give the file a moment


@dataclass(frozen=True)
class Words:
    """What the screenshots say in one language: meeting titles, a must-read notice, and the
    text each screen is recognised by."""

    sync: str
    review: str
    standup: str
    notice: tuple[str, str, str]  # title, text, from
    ok: str
    any: str
    free: str
    soon: str
    open: str
    busy: str
    private: str
    offline: str


TEXTS = {
    "en": Words(
        sync="Weekly sync",
        review="Design review",
        standup="Standup",
        notice=(
            "Fire drill",
            "Fire drill at 15:00 today: leave by the east stairs and meet at the car park. "
            "Do not use the lifts.",
            "Facilities",
        ),
        ok="Press OK when read",
        any="Press any button when read",
        free="Free until",
        soon="Starts in 5 min",
        open="Check-in open",
        busy="Checked in",
        private="Booked",
        offline="Offline since",
    ),
    "zh": Words(
        sync="周例会",
        review="设计评审",
        standup="站会",
        notice=(
            "消防演习",
            "今天15:00进行消防演习：请从东侧楼梯撤离，到停车场集合。请勿乘坐电梯。",  # noqa: RUF001
            "行政部",
        ),
        ok="阅读后请按确认键",
        any="阅读后请按任意键",
        free="空闲至",
        soon="5分钟后开始",
        open="可以签到",
        busy="已签到",
        private="已预订",
        offline="离线（自",  # noqa: RUF001
    ),
}
MIN = 60_000


def _notice(title: str, text: str, sender: str) -> bytes:
    now = int(time.time() * 1000)
    item = {"id": "n-1", "title": title, "text": text, "ts": now, "from": sender}
    return json.dumps({"v": 1, "ts": now, "items": [item]}, ensure_ascii=False).encode()


def _panel_states(
    broker: Mosquitto, responder: mqtt.Client, work: Path, out: Path, lang: str, font: Path
) -> None:
    """The panel in each state: free, starts in 5 min, check-in open, busy, privacy, a notice,
    offline (the broker stopped: the last schedule stays, marked)."""
    t = TEXTS[lang]
    device_id = f"room-{lang}"
    where = topic(SITE, device_id, "cmd", "schedule")

    def schedule(
        items: list[ScheduleItem], open_min: int | None = None, private: bool = False
    ) -> None:
        ts = int(time.time() * 1000)
        payload = encode_schedule("5F-A", ts, items, checkin_open_min=open_min, private=private)
        responder.publish(where, payload, 1, True).wait_for_publish(5)

    now = int(time.time() * 1000)
    schedule([ScheduleItem("bk-1", t.review, now + 120 * MIN, now + 180 * MIN, "Li Wei")])
    png = work / f"panel-{lang}.png"
    dev = FirmwareDevice(
        FirmwareConfig(
            SITE,
            device_id,
            work / device_id,
            port=broker.port,
            app="meeting_panel",
            lang=lang,
            font=font,
            extra={"screen_png": str(png), "reconnect_max_ms": 1000},
        )
    ).start()
    dev.wait_event("schedule", 15)
    dev.wait_event("time", 15)

    def shot(name: str, text: str) -> None:
        _settle(dev, text)
        shutil.copyfile(png, out / f"panel-{name}-{lang}.png")

    shot("free", t.free)
    now = int(time.time() * 1000)
    schedule(
        [ScheduleItem("bk-2", t.standup, now + 4 * MIN + 40_000, now + 20 * MIN, "王芳")],
        open_min=3,
    )
    shot("soon", t.soon)
    schedule([ScheduleItem("bk-3", t.standup, now + 2 * MIN, now + 20 * MIN, "王芳")])
    shot("checkin", t.open)
    busy = [
        ScheduleItem("bk-4", t.sync, now - 10 * MIN, now + 30 * MIN, "Li Wei", True),
        ScheduleItem("bk-5", t.review, now + 60 * MIN, now + 90 * MIN, "王芳"),
    ]
    schedule(busy, private=True)
    shot("private", t.private)
    schedule(busy)
    shot("busy", t.busy)
    shutil.copyfile(png, out / f"panel-{lang}.png")  # the panel's picture in the overview

    notice = topic(SITE, device_id, "cmd", "notice")
    responder.publish(notice, _notice(*t.notice), 1, True).wait_for_publish(5)
    shot("notice", t.any)
    dev.send("button ok")
    responder.publish(notice, b"", 1, True).wait_for_publish(5)
    _settle(dev, t.busy)

    broker.stop()
    try:
        dev.wait_event("disconnected", 15)
        shot("offline", t.offline)
    finally:
        broker.start()
        _connected(responder)
    dev.stop()
    responder.publish(where, b"", 1, True).wait_for_publish(5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tack-shots-"))
    font = ensure_font()
    # A fixed port: the broker is stopped and started again for the offline panel.
    with Mosquitto() as broker:
        responder = _responder(broker)
        try:
            for lang in ("en", "zh"):
                png = work / f"terminal-{lang}.png"
                dev = FirmwareDevice(
                    FirmwareConfig(
                        SITE,
                        f"door-{lang}",
                        work / f"door-{lang}",
                        port=broker.port,
                        lang=lang,
                        font=font,
                        extra={"screen_png": str(png), "verdict_show_ms": 60000},
                    )
                ).start()
                dev.wait_event("connected", 15)
                dev.punch("C0001")
                dev.wait_event("ack", 15)
                _settle(dev, "张伟")
                shutil.copyfile(png, args.out / f"terminal-verdict-{lang}.png")
                dev.stop()

                # A must-read notice, retained, as the gateway sends it.
                notice = topic(SITE, f"note-{lang}", "cmd", "notice")
                t = TEXTS[lang]
                responder.publish(notice, _notice(*t.notice), 1, True).wait_for_publish(5)
                png = work / f"note-{lang}.png"
                dev = FirmwareDevice(
                    FirmwareConfig(
                        SITE,
                        f"note-{lang}",
                        work / f"note-{lang}",
                        port=broker.port,
                        lang=lang,
                        font=font,
                        extra={"screen_png": str(png)},
                    )
                ).start()
                _settle(dev, t.ok)
                shutil.copyfile(png, args.out / f"terminal-notice-{lang}.png")
                dev.stop()
                responder.publish(notice, b"", 1, True).wait_for_publish(5)

                _panel_states(broker, responder, work, args.out, lang, font)
        finally:
            responder.loop_stop()
            responder.disconnect()
    for p in sorted(args.out.glob("*.png")):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
