"""Mosquitto's password file format, so the broker itself checks device passwords.

Mosquitto 2.0 stores ``username:$7$<iterations>$<base64 salt>$<base64 hash>``: PBKDF2-HMAC-SHA512
with a 12-byte salt and a 64-byte key (``apps/mosquitto_passwd``, ``src/password_mosq.c``).
The iteration count is Mosquitto's own default, 101: the passwords Tack issues carry 128 random
bits or more, so guessing one is out of reach however cheap a single try is, while a higher
count would be paid by the broker (a Raspberry Pi) on every device connect.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets

ITERATIONS = 101
SALT_BYTES = 12
KEY_BYTES = 64
PASSWORD_BYTES = 24  # 192 bits, 32 URL-safe characters


def new_password() -> str:
    """A random password that needs no quoting anywhere: URL-safe base64 of 24 bytes."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def hash_password(password: str, *, iterations: int = ITERATIONS) -> str:
    """The ``$7$`` hash Mosquitto 2.0 checks at connect."""
    salt = os.urandom(SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, KEY_BYTES)
    return f"$7${iterations}${_b64(salt)}${_b64(key)}"


def render_password_file(entries: dict[str, str]) -> str:
    return "".join(f"{username}:{hashed}\n" for username, hashed in sorted(entries.items()))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
