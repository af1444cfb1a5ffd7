"""tack.config: the TLS settings (mqtt_tls, mqtt_ca, mqtt_server_name), checked at boot.

A TLS setting that could never connect must stop the device at boot with the key and the fix
named, not leave it retrying a handshake all day; a good one comes back as what the MQTT
client connects with. The CA files are written to ``tmp`` as a technician copies them.
"""

import tls

from tack import config
from tack.mqtt_tls import ca_certs

# Two self-signed CA certificates (P-256, made with openssl for these tests only).
CA_1 = """-----BEGIN CERTIFICATE-----
MIIBlDCCATmgAwIBAgIUQ3eWFXWIg3O3FxsIy5+xhHcYmwQwCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTVGFjayB1bml0IHRlc3QgQ0EgMTAgFw0yNjExMjcxMTU5NTNa
GA8yMTI2MTEwMzExNTk1M1owHjEcMBoGA1UEAwwTVGFjayB1bml0IHRlc3QgQ0Eg
MTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABGm6T8Wti/rcuIgpiLbdui/zvSCy
GsiUaKcndsL3KWTKnaGxnvLY9G4ZHhCK/CbyowM1WDWyco71LSojXyMEMmqjUzBR
MB0GA1UdDgQWBBTwW1MWGilEDy3peohND0rrPM70BDAfBgNVHSMEGDAWgBTwW1MW
GilEDy3peohND0rrPM70BDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kA
MEYCIQD2+Uzw7ZsNf8kNpo+fa2qCgY/XSk3z2UWpjclZM6yq4AIhAOH28mnSlXlo
Yd4bxVHHNECaGWhOAKPTwQ3OW8FwFRAq
-----END CERTIFICATE-----
"""
CA_2 = """-----BEGIN CERTIFICATE-----
MIIBkjCCATmgAwIBAgIUNMk8gi5qQQgmo9PlCvHU8zG9tKowCgYIKoZIzj0EAwIw
HjEcMBoGA1UEAwwTVGFjayB1bml0IHRlc3QgQ0EgMjAgFw0yNjExMjcxMTU5NTNa
GA8yMTI2MTEwMzExNTk1M1owHjEcMBoGA1UEAwwTVGFjayB1bml0IHRlc3QgQ0Eg
MjBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABHcf9T8iiWi0ytIC9h16WvtZyYXt
iOtvKHqsRJU/c++CK57viyumQWpHWF6lGxthka/+Zy3xLRF5CMbxTBM3yBWjUzBR
MB0GA1UdDgQWBBTt18ecRA/liOHc/hxzNQKZThUddDAfBgNVHSMEGDAWgBTt18ec
RA/liOHc/hxzNQKZThUddDAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cA
MEQCIEqlb7H4zV5v2RCXoFO9x45JjPpTEH4rE8FmYh4u7kdHAiAhHBtJKhXExN7t
8pf2YZBBaLwIqQs6ngt6QKU86Mv90Q==
-----END CERTIFICATE-----
"""


def _write(tmp, name, data):
    path = tmp + "/" + name
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    return path


def _settings(**more):
    raw = {"site": "hq", "device_id": "door-1", "mqtt_host": "gw-hq.local"}
    raw.update(more)
    return raw


def _refused(raw, *needles):
    try:
        config.check(raw)
    except config.ConfigError as exc:
        text = str(exc)
        for needle in needles:
            assert needle in text, "%r not in %r" % (needle, text)
        return text
    raise AssertionError("accepted: %r" % (raw,))


def test_tls_is_off_by_default_and_costs_nothing():
    cfg = config.check(_settings())
    assert cfg["mqtt_tls"] is False, cfg["mqtt_tls"]
    assert cfg["mqtt_ca"] is None and cfg["mqtt_server_name"] is None


def test_tls_with_the_brokers_pem_ca_gives_the_client_its_context(tmp):
    ca = _write(tmp, "ca.crt", CA_1)
    cfg = config.check(_settings(mqtt_tls=True, mqtt_ca=ca, mqtt_port=8883))
    ctx, name, path = cfg["mqtt_tls"]
    assert isinstance(ctx, tls.SSLContext), ctx
    assert name == "gw-hq.local", "the server name defaults to mqtt_host, got %r" % name
    assert path == ca
    cfg = config.check(_settings(mqtt_tls=True, mqtt_ca=ca, mqtt_server_name="broker.hq"))
    assert cfg["mqtt_tls"][1] == "broker.hq"


def test_a_der_ca_and_a_pem_bundle_with_windows_line_ends_are_read(tmp):
    pem = _write(tmp, "two.crt", (CA_1 + CA_2).replace("\n", "\r\n"))
    ders = ca_certs(pem)
    assert len(ders) == 2, "both certificates of the bundle: %d" % len(ders)
    assert all(d[0] == 0x30 and len(d) > 300 for d in ders)
    der = _write(tmp, "ca.der", ders[0])
    assert ca_certs(der) == [ders[0]]
    assert config.check(_settings(mqtt_tls=True, mqtt_ca=der))["mqtt_tls"]
    assert config.check(_settings(mqtt_tls=True, mqtt_ca=pem))["mqtt_tls"]


def test_mqtt_tls_must_be_a_boolean():
    for bad in ("yes", 1, "true", None):
        _refused(_settings(mqtt_tls=bad), "mqtt_tls must be true or false")


def test_tls_without_a_ca_names_the_file_to_copy():
    _refused(_settings(mqtt_tls=True), "mqtt_tls needs mqtt_ca", "ca.crt", "tack broker config")


def test_a_ca_or_server_name_without_tls_is_a_half_made_setup(tmp):
    ca = _write(tmp, "ca.crt", CA_1)
    _refused(_settings(mqtt_ca=ca), "mqtt_ca is set but mqtt_tls is false")
    _refused(_settings(mqtt_server_name="gw"), "mqtt_server_name is set but mqtt_tls is false")


def test_names_that_are_not_strings_are_refused(tmp):
    ca = _write(tmp, "ca.crt", CA_1)
    _refused(_settings(mqtt_tls=True, mqtt_ca=5), "mqtt_ca must be a non-empty string")
    _refused(_settings(mqtt_tls=True, mqtt_ca=""), "mqtt_ca must be a non-empty string")
    _refused(
        _settings(mqtt_tls=True, mqtt_ca=ca, mqtt_server_name=""),
        "mqtt_server_name must be a non-empty string",
    )


def test_a_missing_empty_or_wrong_ca_file_is_named_with_the_fix(tmp):
    _refused(
        _settings(mqtt_tls=True, mqtt_ca=tmp + "/nope.crt"),
        "mqtt_ca: no file " + tmp + "/nope.crt",
        "copy the broker's ca.crt",
    )
    empty = _write(tmp, "empty.crt", b"")
    _refused(_settings(mqtt_tls=True, mqtt_ca=empty), empty + " has 0 bytes")
    big = _write(tmp, "bundle.pem", CA_1 * 30)
    _refused(_settings(mqtt_tls=True, mqtt_ca=big), "copy only the broker's ca.crt")
    key = _write(tmp, "ca.key", "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n")
    _refused(_settings(mqtt_tls=True, mqtt_ca=key), key + " is not a PEM or DER certificate")
    torn = _write(tmp, "torn.crt", CA_1[:200] + "\n-----END CERTIFICATE-----\n")
    _refused(_settings(mqtt_tls=True, mqtt_ca=torn), torn + " is not a PEM or DER certificate")
    junk = _write(tmp, "junk.der", b"\x30\x03\x01\x02\x03")
    _refused(_settings(mqtt_tls=True, mqtt_ca=junk), junk + " is not a PEM or DER certificate")
