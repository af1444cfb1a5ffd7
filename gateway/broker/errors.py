"""The broker's folder cannot be used as it is; the message names what to fix."""

from __future__ import annotations

from devices.protocol.errors import TackError


class BrokerConfigError(TackError):
    """A file in the broker's folder is missing, damaged or mismatched, or an option is wrong."""
