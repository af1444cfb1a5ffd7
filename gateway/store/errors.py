"""Errors of the store; devices hear them as the transient ``store_unavailable``."""

from __future__ import annotations

from devices.protocol.errors import TackError
from devices.protocol.reasons import ReasonCode


class StoreError(TackError):
    reason_code = ReasonCode.STORE_UNAVAILABLE


class StoreFullError(StoreError):
    """The disk or the configured cap is full: nothing new can be committed."""
