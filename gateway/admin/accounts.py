"""Local admin accounts: argon2 password hashes, a role each, every change audited.

The CLI (``tack accounts``) and the API share these functions, so a change made either way is
checked and audited the same. Each change commits together with its audit entry
(:meth:`AuditLog.recording`), and ends every session of the account it touches, so a new
password, a lower role or a disabled account takes effect at once.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

import aiosqlite
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from devices.protocol.errors import TackError
from gateway.admin.permissions import Role
from gateway.audit import AuditLog
from gateway.store.records import now_ms

MIN_PASSWORD_CHARS = 10
MAX_PASSWORD_CHARS = 256
USERNAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,31}$")

_hasher = PasswordHasher()
# Checked against when the username is unknown, so a login takes as long either way and the
# timing does not tell which usernames exist.
_DUMMY_HASH = _hasher.hash("tack-no-such-account")


class AccountError(TackError):
    """An account change that cannot be made as asked; the message says what to change."""


class AccountNotFoundError(AccountError):
    pass


@dataclass(frozen=True, slots=True)
class Account:
    username: str
    role: Role
    disabled: bool
    created_ts_ms: int
    changed_ts_ms: int

    def as_dict(self) -> dict[str, object]:
        return {
            "username": self.username,
            "role": str(self.role),
            "disabled": self.disabled,
            "created_ts_ms": self.created_ts_ms,
            "changed_ts_ms": self.changed_ts_ms,
        }


def check_username(username: str) -> str:
    if not USERNAME_PATTERN.match(username):
        raise AccountError(
            f"invalid username {username!r}: use 1-32 of a-z 0-9 . _ - starting with a letter "
            "or digit (lower case)"
        )
    return username


def check_password(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_CHARS:
        raise AccountError(
            f"the password is too short: use at least {MIN_PASSWORD_CHARS} characters "
            "(a few words make a good one)"
        )
    if len(password) > MAX_PASSWORD_CHARS:
        raise AccountError(f"the password is too long: at most {MAX_PASSWORD_CHARS} characters")
    if password.strip().lower() == username.lower():
        raise AccountError("the password must not be the username")


async def hash_password(password: str) -> str:
    # argon2 takes tens of milliseconds of CPU on purpose: off the event loop.
    return await asyncio.to_thread(_hasher.hash, password)


async def password_matches(password_hash: str | None, password: str) -> bool:
    def check() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def _account(row: aiosqlite.Row | tuple[object, ...]) -> Account:
    return Account(str(row[0]), Role(str(row[1])), bool(row[2]), int(str(row[3])), int(str(row[4])))


_SELECT = "SELECT username, role, disabled, created_ts_ms, changed_ts_ms FROM accounts"


async def list_accounts(db: aiosqlite.Connection) -> list[Account]:
    async with db.execute(_SELECT + " ORDER BY username") as cur:
        return [_account(r) for r in await cur.fetchall()]


async def get_account(db: aiosqlite.Connection, username: str) -> Account | None:
    async with db.execute(_SELECT + " WHERE username = ?", (username,)) as cur:
        row = await cur.fetchone()
    return _account(row) if row else None


async def _hash_of(db: aiosqlite.Connection, username: str) -> tuple[str, bool] | None:
    async with db.execute(
        "SELECT password_hash, disabled FROM accounts WHERE username = ?", (username,)
    ) as cur:
        row = await cur.fetchone()
    return (str(row[0]), bool(row[1])) if row else None


async def authenticate(db: aiosqlite.Connection, username: str, password: str) -> str | None:
    """``None`` when the password is right and the account enabled; else why not (``unknown``,
    ``bad_password``, ``disabled``), for the audit entry. Unknown names cost a hash check too."""
    found = await _hash_of(db, username)
    ok = await password_matches(found[0] if found else None, password)
    if found is None:
        return "unknown"
    if not ok:
        return "bad_password"
    if found[1]:
        return "disabled"
    return None


async def add_account(
    db: aiosqlite.Connection, audit: AuditLog, actor: str, username: str, role: Role, password: str
) -> Account:
    check_username(username)
    check_password(username, password)
    hashed = await hash_password(password)
    ts = now_ms()
    async with audit.recording(actor, "account.create", username, {"role": str(role)}):
        if await get_account(db, username) is not None:
            raise AccountError(
                f"account {username!r} exists already; change it with `tack accounts passwd` "
                "or `tack accounts role`"
            )
        await db.execute(
            "INSERT INTO accounts (username, password_hash, role, disabled, created_ts_ms,"
            " changed_ts_ms) VALUES (?, ?, ?, 0, ?, ?)",
            (username, hashed, str(role), ts, ts),
        )
    return Account(username, role, False, ts, ts)


async def _change(
    db: aiosqlite.Connection,
    audit: AuditLog,
    actor: str,
    action: str,
    username: str,
    detail: dict[str, object],
    sql: str,
    args: tuple[object, ...],
) -> None:
    async with audit.recording(actor, action, username, detail):
        cur = await db.execute(
            sql + ", changed_ts_ms = ? WHERE username = ?", (*args, now_ms(), username)
        )
        if cur.rowcount == 0:
            raise AccountNotFoundError(
                f"no account {username!r}; see `tack accounts list` (or GET /api/accounts)"
            )
        await db.execute("DELETE FROM admin_sessions WHERE username = ?", (username,))


async def set_password(
    db: aiosqlite.Connection, audit: AuditLog, actor: str, username: str, password: str
) -> None:
    check_password(username, password)
    hashed = await hash_password(password)
    await _change(
        db,
        audit,
        actor,
        "account.passwd",
        username,
        {},
        "UPDATE accounts SET password_hash = ?",
        (hashed,),
    )


async def set_role(
    db: aiosqlite.Connection, audit: AuditLog, actor: str, username: str, role: Role
) -> None:
    await change_account(db, audit, actor, username, role=role)


async def set_disabled(
    db: aiosqlite.Connection, audit: AuditLog, actor: str, username: str, disabled: bool
) -> None:
    await change_account(db, audit, actor, username, disabled=disabled)


async def change_account(
    db: aiosqlite.Connection,
    audit: AuditLog,
    actor: str,
    username: str,
    *,
    role: Role | None = None,
    disabled: bool | None = None,
) -> None:
    """Set the role and/or disable (or enable) the account, in one write transaction with the
    "keep an enabled admin" check and the audit entries (``account.role``, ``account.disable``
    or ``account.enable``): two changes made at once cannot both pass the check on a count the
    other is about to make wrong, and a refused request changes nothing."""
    if role is None and disabled is None:
        return
    last_action = (
        "account.role" if disabled is None else "account.disable" if disabled else "account.enable"
    )
    # recording() appends its entry after the block, from this dict as the block left it.
    last_detail: dict[str, object] = {}
    async with audit.recording(actor, last_action, username, last_detail):
        before = await get_account(db, username)
        if before is None:
            raise AccountNotFoundError(
                f"no account {username!r}; see `tack accounts list` (or GET /api/accounts)"
            )
        role_after = before.role if role is None else role
        disabled_after = before.disabled if disabled is None else disabled
        stays_admin = role_after is Role.ADMIN and not disabled_after
        if before.role is Role.ADMIN and not before.disabled and not stays_admin:
            await _keep_an_admin(db, username)
        ts = now_ms()
        if role is not None:
            await db.execute(
                "UPDATE accounts SET role = ?, changed_ts_ms = ? WHERE username = ?",
                (str(role), ts, username),
            )
            role_detail = {"role": str(role), "was": str(before.role)}
            if disabled is None:
                last_detail.update(role_detail)
            else:
                await audit.append_in_transaction(actor, "account.role", username, role_detail)
        if disabled is not None:
            await db.execute(
                "UPDATE accounts SET disabled = ?, changed_ts_ms = ? WHERE username = ?",
                (int(disabled), ts, username),
            )
        await db.execute("DELETE FROM admin_sessions WHERE username = ?", (username,))


async def _keep_an_admin(db: aiosqlite.Connection, username: str) -> None:
    """Refuse to take away the last enabled admin: nobody could manage accounts over the web
    after that (the CLI on the gateway's machine still could). Call it inside the write
    transaction that makes the change, so the count cannot change before the commit."""
    async with db.execute(
        "SELECT count(*) FROM accounts WHERE role = 'admin' AND disabled = 0 AND username != ?",
        (username,),
    ) as cur:
        row = await cur.fetchone()
    if not row or int(row[0]) == 0:
        raise AccountError(
            f"{username!r} is the last enabled admin; make another account admin first"
        )
