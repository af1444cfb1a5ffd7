"""Which columns are sealed, and the one way to seal and open them.

Records: the credential (card or employee number) and the parts of the body that identify a
person or a place (the card or typed id again, the GPS fix) are sealed together into
``records.sealed``; ``credential`` stays NULL and ``body`` keeps the rest (photo reference,
booking, button). ``person_id`` stays in the clear: it is the pseudonymous join key the reports,
the bridge's queue and the attendance rules need; it names a person only together with the
roster, which the backend owns. Timestamps, kind, status, reason, verdict and sync state stay in
the clear so that queries and reports run without the key.

Camera frames: the JPEG is sealed in place in ``frames.data``. Face templates
(gateway/verify/face/templates.py) are bound to their person and source.

The associated data names the table and the row's natural key (device id and message id, known
before the row is inserted, which keeps the group commit a single INSERT), so a sealed value
copied onto another row fails its check. A NULL ``key_id`` marks a row written in the clear by a
Tack before schema v10; it reads as it is until `tack keys rotate` seals it.
"""

from __future__ import annotations

import json
from typing import Any

from devices.protocol.messages import CredentialType
from gateway.security.keyring import Keyring, KeyringError, aad

PERSONAL_BODY_KEYS = frozenset({*(str(t) for t in CredentialType), "gps"})
# One encoder for the hot path: json.dumps with options builds a new encoder on every call.
_compact = json.JSONEncoder(separators=(",", ":")).encode


def record_aad(device_id: str, msg_id: str) -> bytes:
    return aad("record", device_id, msg_id)


def frame_aad(device_id: str, msg_id: str) -> bytes:
    return aad("frame", device_id, msg_id)


def template_aad(person_id: str, source: str) -> bytes:
    """Face templates keep the associated data of the single-key era (person and source), so
    templates sealed before the keyring still open."""
    return f"tack-face-template:v1\x00{person_id}\x00{source}".encode()


def seal_record(
    keyring: Keyring,
    device_id: str,
    msg_id: str,
    credential: str | None,
    body: dict[str, Any],
) -> tuple[str, str, bytes]:
    """``(clear body JSON, key id, sealed personal fields)`` for an INSERT or an UPDATE."""
    clear = {k: v for k, v in body.items() if k not in PERSONAL_BODY_KEYS}
    personal = {k: v for k, v in body.items() if k in PERSONAL_BODY_KEYS}
    plain = _compact({"c": credential, "b": personal}).encode()
    kid, sealed = keyring.seal(record_aad(device_id, msg_id), plain)
    return _compact(clear), kid, sealed


def open_record(
    keyring: Keyring | None,
    device_id: str,
    msg_id: str,
    key_id: str | None,
    sealed: bytes | None,
    credential: str | None,
    body_json: str,
) -> tuple[str | None, dict[str, Any]]:
    """The record's credential and whole body, whether the row is sealed or from before v10."""
    body: dict[str, Any] = json.loads(body_json)
    if key_id is None or sealed is None:
        return credential, body
    inner = json.loads(_ring(keyring).unseal(key_id, record_aad(device_id, msg_id), bytes(sealed)))
    body.update(inner["b"])
    return inner["c"], body


def seal_frame(keyring: Keyring, device_id: str, msg_id: str, data: bytes) -> tuple[str, bytes]:
    return keyring.seal(frame_aad(device_id, msg_id), data)


def open_frame(
    keyring: Keyring | None, device_id: str, msg_id: str, key_id: str | None, data: bytes
) -> bytes:
    if key_id is None:
        return data
    return _ring(keyring).unseal(key_id, frame_aad(device_id, msg_id), data)


def _ring(keyring: Keyring | None) -> Keyring:
    if keyring is None:  # a caller that never met a sealed row before v10 passed none
        raise KeyringError("a sealed row was read without a keyring; pass keyring_for(settings)")
    return keyring
