"""A local certificate authority and the broker's server certificate, made with ``cryptography``.

An office gateway has no public name a public CA would sign, so Tack makes its own CA once and
keeps it beside the broker's configuration; devices and the gateway trust that CA alone
(``ca.crt``), which also means a certificate from anywhere else is refused. The CA's key never
leaves the folder and is readable by its owner only; the server key is readable by the
broker's group too, because Mosquitto reads it after dropping root.

Keys are ECDSA P-256: supported by OpenSSL, Python's ``ssl`` and mbedTLS on ESP32-class boards,
and cheap for a Raspberry Pi to handshake with.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.broker.errors import BrokerConfigError
from gateway.broker.files import write_atomic

CA_CERT = "ca.crt"
CA_KEY = "ca.key"
SERVER_CERT = "server.crt"
SERVER_KEY = "server.key"
CA_DAYS = 3650
SERVER_DAYS = 825  # the longest validity clients such as Apple's accept for a server certificate
RENEW_BEFORE_DAYS = 30


@dataclass(frozen=True, slots=True)
class ServerCertResult:
    path: Path
    issued: bool  # False: the existing certificate was kept
    not_after: dt.datetime
    why: str  # why it was (re)issued, or why it was kept


def ensure_ca(
    out: Path, common_name: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, bool]:
    """Load the folder's CA, or make one; the flag says whether it was made now."""
    cert_path, key_path = out / CA_CERT, out / CA_KEY
    if cert_path.exists() or key_path.exists():
        return (*_load_ca(cert_path, key_path), False)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    # The key first: a folder holding a CA certificate without its key cannot be repaired.
    write_atomic(key_path, _key_pem(key), 0o600)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key, True


def ensure_server_cert(
    out: Path,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: list[str],
    *,
    renew: bool = False,
) -> ServerCertResult:
    """Keep the server certificate if it is ours, names exactly ``hosts`` and is not about to
    expire; otherwise issue a new one (with a new key)."""
    cert_path, key_path = out / SERVER_CERT, out / SERVER_KEY
    why = "asked to renew" if renew else "none yet"
    if not renew and cert_path.exists() and key_path.exists():
        current = x509.load_pem_x509_certificate(cert_path.read_bytes())
        why = _why_replace(current, ca_cert, hosts)
        if not why:
            return ServerCertResult(
                cert_path, False, current.not_valid_after_utc, "still valid for these hosts"
            )
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    not_after = now + dt.timedelta(days=SERVER_DAYS)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(_san(hosts)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_atomic(key_path, _key_pem(key), 0o640)
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return ServerCertResult(cert_path, True, not_after, why)


def parse_host(value: str) -> x509.GeneralName:
    """A ``--host`` value as a SAN entry: an IP address, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        pass
    labels = value.rstrip(".").split(".")
    if not value or not all(
        0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
        for label in labels
    ):
        raise BrokerConfigError(
            f"--host {value!r} is neither an IP address nor a host name (letters, digits, "
            "hyphens, dots)"
        )
    return x509.DNSName(value.rstrip(".").lower())


def _san(hosts: list[str]) -> list[x509.GeneralName]:
    return [parse_host(h) for h in hosts]


def _why_replace(cert: x509.Certificate, ca_cert: x509.Certificate, hosts: list[str]) -> str:
    if cert.issuer != ca_cert.subject:
        return "it was not issued by this folder's CA"
    if cert.not_valid_after_utc - _now() < dt.timedelta(days=RENEW_BEFORE_DAYS):
        return f"it expires within {RENEW_BEFORE_DAYS} days"
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "it names no hosts"
    if set(names) != set(_san(hosts)):
        return "the host names changed"
    return ""


def _load_ca(
    cert_path: Path, key_path: Path
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except FileNotFoundError as exc:
        raise BrokerConfigError(
            f"{exc.filename} is missing but its partner is there; restore it from a backup, or "
            f"move {cert_path.name} and {key_path.name} away to make a new CA (every device "
            "then needs the new ca.crt)"
        ) from exc
    except ValueError as exc:
        raise BrokerConfigError(f"cannot read the CA in {cert_path.parent}: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or (
        _spki(key.public_key()) != _spki(cert.public_key())
    ):
        raise BrokerConfigError(
            f"{key_path} does not belong to {cert_path}; restore the matching pair from a backup"
        )
    return cert, key


def _spki(public_key: CertificatePublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
