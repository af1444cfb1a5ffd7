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

    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe(f"tack/v1/{SITE}/+/evt/punch", 1)
    client.subscribe(f"tack/v1/{SITE}/+/state/online", 1)
    client.loop_start()
    return client


def _settle(dev: FirmwareDevice, text: str) -> None:
    dev.wait_for(
        lambda _: any(text in line for line in dev.screen()), timeout_s=15, what=repr(text)
    )
    time.sleep(0.3)  # the PNG is written with the screen; give the file a moment


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tack-shots-"))
    font = ensure_font()
    now = int(time.time() * 1000)
    rooms = [
        ScheduleItem("bk-1", "Weekly sync", now - 600_000, now + 1_800_000, "Li Wei"),
        ScheduleItem("bk-2", "设计评审", now + 3_600_000, now + 5_400_000, "王芳"),
    ]
    with Mosquitto() as broker:
        responder = _responder(broker)
        responder.publish(
            topic(SITE, "room-5fa", "cmd", "schedule"),
            encode_schedule("5F-A", now, rooms),
            1,
            True,
        ).wait_for_publish(5)
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

                png = work / f"panel-{lang}.png"
                dev = FirmwareDevice(
                    FirmwareConfig(
                        SITE,
                        "room-5fa",
                        work / f"room-{lang}",
                        port=broker.port,
                        app="meeting_panel",
                        lang=lang,
                        font=font,
                        extra={"screen_png": str(png)},
                    )
                ).start()
                dev.wait_event("schedule", 15)
                _settle(dev, "Weekly sync")
                shutil.copyfile(png, args.out / f"panel-{lang}.png")
                dev.stop()
        finally:
            responder.loop_stop()
            responder.disconnect()
    for p in sorted(args.out.glob("*.png")):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
