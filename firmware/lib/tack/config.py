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
    # TLS to the broker: the CA file on flash that signed the broker's certificate, and the
    # name that certificate must carry (mqtt_host when unset).
    mqtt_tls=False,
    mqtt_ca=None,
    mqtt_server_name=None,
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
    """Merge ``raw`` over the defaults and validate it; returns the settings dict.

    With TLS on, ``mqtt_tls`` comes back as what the MQTT client connects with: (TLS context,
    server name, CA path); otherwise it stays False.
    """
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
    _check_tls(cfg)
    return cfg


def _check_tls(cfg):
    """TLS settings that could never connect are stopped here, at boot, with the fix named,
    rather than found later by a device that retries a handshake all day."""
    if cfg["mqtt_tls"] is not True and cfg["mqtt_tls"] is not False:
        raise ConfigError("mqtt_tls must be true or false, got %r" % (cfg["mqtt_tls"],))
    for key in ("mqtt_ca", "mqtt_server_name"):
        value = cfg[key]
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ConfigError("%s must be a non-empty string, got %r" % (key, value))
        if not cfg["mqtt_tls"]:
            # A CA without TLS is a half-made TLS setup: the device would send its password
            # in clear to a port that expects TLS.
            raise ConfigError("%s is set but mqtt_tls is false: set mqtt_tls to true to use it" % key)
    if not cfg["mqtt_tls"]:
        return
    if cfg["mqtt_ca"] is None:
        raise ConfigError(
            "mqtt_tls needs mqtt_ca: the path of the broker's CA file on the device "
            "(ca.crt from the folder of `tack broker config`)"
        )
    if cfg["mqtt_server_name"] is None:
        cfg["mqtt_server_name"] = cfg["mqtt_host"]
    from tack import unload

    try:
        from tack import mqtt_tls
    except ImportError:  # no tls module: a MicroPython older than 1.23, or built without TLS
        raise ConfigError("mqtt_tls needs MicroPython's tls module (1.23 or newer), which this build lacks")
    try:
        # The context is made here, the first thing at boot, and kept for the device's life
        # (see tack.mqtt_tls.context()); what the link needs to connect replaces the flag.
        ctx = mqtt_tls.context(cfg["mqtt_ca"])
    except mqtt_tls.MQTTError as exc:
        raise ConfigError(str(exc))
    finally:
        del mqtt_tls
        unload("tack.mqtt_tls")
    cfg["mqtt_tls"] = (ctx, cfg["mqtt_server_name"], cfg["mqtt_ca"])


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
