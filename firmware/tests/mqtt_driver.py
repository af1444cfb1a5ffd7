"""Drives tack.mqtt against a real broker for tests/firmware/test_mqtt_client.py.

    micropython mqtt_driver.py '{"do": "pub", "host": ..., "port": ..., "id": ..., ...}'

Prints one JSON object a line (``{"ev": ...}``) so the CPython side can follow along; ``ms`` is
the time since start. Errors are reported as ``{"ev": "error", ...}`` lines, not tracebacks.
"""

import gc
import json
import os
import sys
import time

from tack.mqtt import Backoff, MQTTClient, MQTTError

T0 = time.ticks_ms()


def emit(ev, **kw):
    kw["ev"] = ev
    kw["ms"] = time.ticks_diff(time.ticks_ms(), T0)
    print(json.dumps(kw))


def client(o):
    c = MQTTClient(
        o["id"],
        o["host"],
        o["port"],
        keepalive_s=o.get("keepalive", 30),
        clean_session=o.get("clean", False),
        user=o.get("user"),
        password=o.get("password"),
        timeout_s=o.get("timeout", 5.0),
        will=tuple(o["will"]) if o.get("will") else None,
    )
    c.set_callback(lambda t, p: emit("msg", topic=t, hex=p.hex(), n=len(p)))
    return c


def wait_acked(c, pid, timeout_ms=5000):
    t = time.ticks_ms()
    while not c.acked(pid):
        if time.ticks_diff(time.ticks_ms(), t) > timeout_ms:
            emit("no_puback", pid=pid)
            return
        c.poll(100)
    emit("acked", pid=pid, pending=c.pending_acks())


def do_pub(c, o):
    pid = c.publish(o["topic"], o["payload"].encode(), o.get("qos", 1), o.get("retain", False))
    emit("published", pid=pid)
    if pid:
        wait_acked(c, pid)


def do_file(c, o):
    gc.collect()
    base = gc.mem_alloc()
    pid = c.publish_parts(o["topic"], [(o["path"], 0, os.stat(o["path"])[6])], o.get("qos", 1))
    emit("published", pid=pid, heap_during=gc.mem_alloc() - base)
    wait_acked(c, pid)


def do_listen(c, o):
    if o.get("topic"):
        emit("subscribed", granted=c.subscribe(o["topic"], o.get("qos", 1)))
    end = time.ticks_add(time.ticks_ms(), int(o.get("seconds", 5) * 1000))
    while time.ticks_diff(end, time.ticks_ms()) > 0:
        c.poll(50)
    emit("done", connected=c.connected)


def do_hold(c, o):
    # Stays connected until the link breaks; with "reconnect", runs the intended app loop.
    emit("holding")
    while True:
        try:
            c.poll(1000)
        except (OSError, MQTTError) as exc:
            emit("error", kind=type(exc).__name__, text=str(exc), connected=c.connected)
            break
    if not o.get("reconnect"):
        return
    backoff = Backoff(o.get("base_ms", 100), o.get("cap_ms", 400))
    while True:
        delay = backoff.next_ms()
        emit("retry", delay_ms=delay)
        time.sleep_ms(delay)
        try:
            sp = c.connect()
        except (OSError, MQTTError) as exc:
            c.close()
            emit("connect_failed", kind=type(exc).__name__, text=str(exc))
            continue
        emit("reconnected", session_present=sp)
        return


def do_bench(c, o):
    payload = b"x" * o.get("size", 200)
    n = o.get("n", 1000)
    t = time.ticks_ms()
    for _ in range(n):
        pid = c.publish(o["topic"], payload, 1)
        while not c.acked(pid):
            c.poll(1000)
    dt = time.ticks_diff(time.ticks_ms(), t)
    emit("bench", n=n, elapsed_ms=dt, per_s=n * 1000 // max(dt, 1))


def do_mem(c, o):
    # Heap held by a connected, idle client: measured around construction and connect.
    c.close()
    gc.collect()
    base = gc.mem_alloc()
    c2 = client(o)
    c2.connect()
    c2.subscribe(o["topic"], 1)
    for _ in range(5):
        c2.poll(20)
    gc.collect()
    emit("mem", client_bytes=gc.mem_alloc() - base, free=gc.mem_free())
    c2.disconnect()


def main():
    o = json.loads(sys.argv[1])
    c = client(o)
    try:
        sp = c.connect()
    except (OSError, MQTTError) as exc:
        code = getattr(exc, "code", None)
        emit("connect_failed", kind=type(exc).__name__, text=str(exc), code=code)
        return
    emit("connected", session_present=sp)
    try:
        globals()["do_" + o["do"]](c, o)
    except (OSError, MQTTError) as exc:
        emit("error", kind=type(exc).__name__, text=str(exc))
        return
    if o.get("disconnect", True):
        c.disconnect()
    emit("exit")


main()
