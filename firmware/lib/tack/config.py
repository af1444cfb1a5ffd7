"""The device's settings: one JSON file on flash, checked once at start-up.

A device that boots with a bad setting must say which setting and why on its screen and in its
log, instead of failing later in a way nobody at the door can read. Every key has a default
except the ones that name the device (``site``, ``device_id``).
"""

import json
import re

_IDENT = re.compile("^[A-Za-z0-9][A-Za-z0-9_-]*$")

# Keyword arguments, not a {"key": value} literal: the keys become qstrs, so the settings dict
# the device keeps for its whole life holds no copy of each key name on the heap.
DEFAULTS = dict(
    site=None,
    device_id=None,
    app="clock_terminal",
    lang="en",
    hal="unix",
    data_dir="data",
    mqtt_host="127.0.0.1",
    mqtt_port=1883,
    mqtt_user=None,
    mqtt_password=None,
    keepalive_s=30,
    socket_timeout_s=5,
    reconnect_min_ms=500,
    reconnect_max_ms=30000,
    ack_timeout_s=10,
    send_window=8,
    outbox_max_records=500,
    outbox_max_bytes=262144,
    max_frame_bytes=65536,
    verdict_show_ms=3000,
    gps_max_age_ms=10000,
    tz_offset_min=0,
    font_path="font.bin",
    # unix HAL: files and pipes that stand in for the sensors
    screen_png=None,
    gps_path=None,
    camera_path=None,
    # board HAL: pin numbers of an ESP32-class board
    pins=None,
)

_INTS = {
    "mqtt_port": (1, 65535),
    "keepalive_s": (5, 3600),
    "socket_timeout_s": (1, 120),
    "reconnect_min_ms": (10, 600000),
    "reconnect_max_ms": (100, 3600000),
    "ack_timeout_s": (1, 3600),
    # Each message may be two QoS 1 publishes (frame + punch); the MQTT client holds 32.
    "send_window": (1, 16),
    "outbox_max_records": (1, 100000),
    "outbox_max_bytes": (4096, 1 << 30),
    "max_frame_bytes": (1024, 65536),
    "verdict_show_ms": (500, 60000),
    "gps_max_age_ms": (1000, 600000),
    "tz_offset_min": (-720, 840),
}

_CHOICES = {
    "app": ("clock_terminal", "meeting_panel"),
    "lang": ("en", "zh"),
    "hal": ("unix", "board"),
}


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the key and what it accepts."""


def check(raw):
    """Merge ``raw`` over the defaults and validate it; returns the settings dict."""
    if not isinstance(raw, dict):
        raise ConfigError("config must be a JSON object")
    cfg = {}  # type: dict
    for key in DEFAULTS:
        cfg[key] = DEFAULTS[key]
    for key in raw:
        if key not in DEFAULTS:
            raise ConfigError("unknown setting %r (known: %s)" % (key, ", ".join(sorted(DEFAULTS))))
        cfg[key] = raw[key]
    for key in ("site", "device_id"):
        value = cfg[key]
        if not isinstance(value, str) or not 1 <= len(value) <= 32 or not _IDENT.match(value):
            raise ConfigError(
                "%s must be 1-32 of A-Z a-z 0-9 _ - starting with a letter or digit, got %r"
                % (key, value)
            )
    for key in _INTS:
        lo, hi = _INTS[key]
        value = cfg[key]
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise ConfigError("%s must be an integer from %d to %d, got %r" % (key, lo, hi, value))
    for key in _CHOICES:
        if cfg[key] not in _CHOICES[key]:
            raise ConfigError("%s must be one of %s, got %r" % (key, ", ".join(_CHOICES[key]), cfg[key]))
    if cfg["reconnect_max_ms"] < cfg["reconnect_min_ms"]:
        raise ConfigError("reconnect_max_ms must be at least reconnect_min_ms")
    for key in ("mqtt_host", "data_dir", "font_path"):
        if not isinstance(cfg[key], str) or not cfg[key]:
            raise ConfigError("%s must be a non-empty string" % key)
    return cfg


def load(path):
    """Read and check the JSON file at ``path``."""
    try:
        with open(path) as f:
            raw = json.load(f)
    except OSError as exc:
        raise ConfigError("cannot read config file %s: %s" % (path, exc))
    except ValueError as exc:
        raise ConfigError("config file %s is not valid JSON: %s" % (path, exc))
    return check(raw)
