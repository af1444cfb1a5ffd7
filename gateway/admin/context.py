"""What every request handler of the admin app needs, built once per app."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiosqlite

from gateway.admin.ratelimit import LoginLimiter
from gateway.admin.sessions import SessionStore
from gateway.audit import AuditLog
from gateway.config import TackSettings

if TYPE_CHECKING:
    from gateway.service import Gateway


@dataclass
class AdminContext:
    settings: TackSettings
    db: aiosqlite.Connection
    service: Gateway | None
    audit: AuditLog
    sessions: SessionStore
    limiter: LoginLimiter
    clock: Callable[[], int]  # UTC milliseconds; tests move it to expire sessions
    # Password checks under way at once: argon2 takes 64 MiB each, so logins sent together
    # queue here instead of adding up (gateway/admin/auth.py login).
    verify_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(2))

    @classmethod
    def build(
        cls,
        settings: TackSettings,
        db: aiosqlite.Connection,
        service: Gateway | None,
        clock: Callable[[], int],
    ) -> AdminContext:
        a = settings.admin
        return cls(
            settings=settings,
            db=db,
            service=service,
            audit=AuditLog(db, settings.audit_head_file),
            sessions=SessionStore(
                db,
                lifetime_ms=a.session_lifetime_min * 60_000,
                idle_ms=a.session_idle_min * 60_000,
                clock=clock,
            ),
            limiter=LoginLimiter(
                a.login_max_failures, a.login_window_s, clock=lambda: clock() / 1000
            ),
            clock=clock,
        )

    async def changed(self, what: str) -> None:
        """Tell a running gateway that something changed, so it acts now instead of at its next
        refresh: a revoked device is refused from the next message on, a notice goes out at
        once. Without a gateway (``tack admin serve``) it notices within registry.refresh_s."""
        service: Any = self.service
        if service is None:
            return
        if what == "devices":
            await service.registry.reload()
        elif what == "notices":
            service.notices.kick()
