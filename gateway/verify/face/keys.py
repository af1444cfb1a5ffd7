"""The key that seals face templates: 32 random bytes in a file of their own, never in the store.

The file holds the key as 64 hexadecimal digits and a newline, readable by its owner only. A
template encrypted under one key cannot be read under another, so the store records a key id
(a hash of the key, not the key) beside each template, and a wrong key file is named as such
instead of surfacing as a thousand integrity failures.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from gateway.security.keyring import KEY_BYTES, key_id
from gateway.verify.face.errors import FaceKeyError

__all__ = ["KEY_BYTES", "create_key_file", "key_id", "load_key"]


def create_key_file(path: Path, *, overwrite: bool = False) -> str:
    """Write a new random key; refuse to replace an existing file unless ``overwrite``.

    Returns the key id. Replacing a key makes every template sealed with the old one unreadable.
    """
    if path.exists() and not overwrite:
        raise FaceKeyError(
            f"face key file {path} already exists; templates sealed with it would become "
            "unreadable if it were replaced (pass --force to replace it anyway)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key_id(key)


def load_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError as exc:
        raise FaceKeyError(
            f"face key file {path} does not exist; create one with "
            f"`tack faces keygen --key-file {path}` (or set face.key_file), and back it up: "
            "templates cannot be read without it"
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise FaceKeyError(f"face key file {path} cannot be read: {exc}") from exc
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise FaceKeyError(
            f"face key file {path} must hold {KEY_BYTES * 2} hexadecimal digits; it holds "
            "something else (create a new one with `tack faces keygen`)"
        ) from exc
    if len(key) != KEY_BYTES:
        raise FaceKeyError(
            f"face key file {path} holds a {len(key)}-byte key; AES-256 needs {KEY_BYTES} bytes "
            f"({KEY_BYTES * 2} hexadecimal digits)"
        )
    return key
