"""TLS for the MQTT connection, on a device whose config has ``mqtt_tls``.

``tack.config`` loads this module at boot to make the TLS context, and ``tack.mqtt_connect``
for each handshake; both unload it right after, so a device on a plain LAN never loads it and
a TLS device holds its code only while it boots or connects.
MicroPython's heap holds the TLS context from boot on (3 KB on the 64-bit Unix port) and the
TLS socket object while connected (0.5 KB); mbedTLS's record buffers (about 20 KB) come from
the C heap on the Unix port and the IDF heap on an ESP32 (docs/firmware.md, Memory).

The broker is trusted only if its certificate chains to the CA file (``mqtt_ca``) and names
``mqtt_server_name``: there is no way to turn the check off, because a device that talks to
any broker hands its password and its punches to whoever answers.
"""

import os

import tls
from binascii import a2b_base64

from tack import why
from tack.mqtt import MQTTError

# A CA file is one certificate or a few (a CA being replaced); anything larger is a system
# bundle copied by mistake, which would not fit the heap.
_MAX_CA_BYTES = 16384


def ca_certs(path):
    """The certificates of the CA file at ``path`` as DER: the file is PEM (what ``tack broker
    config`` writes as ca.crt, one or more certificates) or one DER certificate.

    PEM is decoded here rather than by mbedTLS: MicroPython's mbedTLS parses PEM only in builds
    made with MBEDTLS_PEM_PARSE_C (the Unix build in the tests is not; it answers "invalid
    cert"), DER in every build. Raises ValueError saying what is wrong and what to do.
    """
    try:
        size = os.stat(path)[6]
    except OSError:
        raise ValueError(why("tl_noca", path))
    if not 0 < size <= _MAX_CA_BYTES:
        raise ValueError(why("tl_casize", path, size, _MAX_CA_BYTES))
    with open(path, "rb") as f:
        data = f.read()
    if data[0] == 0x30:  # a DER certificate starts with an ASN.1 SEQUENCE
        return [data]
    certs = []
    lines = []  # type: list  # base64 lines of the certificate being read
    inside = False
    for line in data.split(b"\n"):
        line = line.strip()  # \r too: a file edited on Windows
        if line == b"-----BEGIN CERTIFICATE-----":
            inside = True
            lines = []
        elif line == b"-----END CERTIFICATE-----" and inside:
            try:
                certs.append(a2b_base64(b"".join(lines)))
            except ValueError:
                raise ValueError(why("tl_badca", path))
            inside = False
        elif inside:
            lines.append(line)
    if not certs:
        raise ValueError(why("tl_badca", path))
    return certs


def context(ca):
    """The TLS context that trusts the CA file ``ca`` only; MQTTError (code "tls") when the
    file is unusable.

    A device makes it once, first thing at boot, and keeps it: it is about 3 KB in one piece,
    which a small heap has at boot but may not have once it has been in use a while.
    """
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    # A client context's default, said here so that no port's default can differ (the stubs
    # lack the attribute).
    ctx.verify_mode = tls.CERT_REQUIRED  # type: ignore[attr-defined]
    try:
        for der in ca_certs(ca):
            ctx.load_verify_locations(der)
    except ValueError as exc:
        # mbedTLS says only "invalid cert": the file was read but is not a certificate.
        text = str(exc)
        raise MQTTError("tls", text if ca in text else why("tl_badca", ca))
    return ctx


def wrap(sock, client):
    """Run the TLS handshake on the connected ``sock``; return the TLS socket.

    ``client.tls`` is (context, server name, CA path). Raises MQTTError (code "tls") when the
    broker cannot be trusted, and OSError when the handshake breaks off (a plain MQTT port, a
    dropped connection, a silent broker: each read waits at most the socket's timeout).
    """
    ctx, name, ca = client.tls
    try:
        return ctx.wrap_socket(sock, server_hostname=name)
    except ValueError as exc:
        # The verification failed; mbedTLS gives its reasons, one a line.
        text = str(exc).strip().replace("\n", "; ")
        if "trusted CA" in text:
            fix = why("tl_ca", name, ca)
        elif "Common Name" in text:
            fix = why("tl_name", name, ca)
        elif "validity" in text:
            fix = why("tl_time", name, ca)
        else:
            fix = why("tl_other", name, ca)
        raise MQTTError("tls", why("tl_refused", client.host, client.port, fix, text))
    except OSError as exc:
        raise OSError(why("tl_hshake", client.host, client.port, exc))
