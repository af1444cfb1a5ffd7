"""Sync between the gateway's store and the collaboration backend, one adapter per backend."""

from cloud_bridge.adapter import (
    BackendAdapter,
    CloudAuthError,
    CloudConfigError,
    CloudConnectError,
    CloudError,
    CloudResponseError,
    CloudTimeoutError,
    LeaveRecord,
    PhotoUnavailableError,
    RosterPage,
    UploadOutcome,
    UploadResult,
)
from cloud_bridge.capabilities import (
    BookingPage,
    GeofenceSource,
    LeaveBalanceSource,
    RoomSource,
    RosterChanges,
    ShiftSource,
)
from cloud_bridge.dingtalk import DingTalkAdapter
from cloud_bridge.ratelimit import TokenBucket
from cloud_bridge.registry import load_adapter
from cloud_bridge.runner import Bridge, BridgeCounters, BridgeStats, read_status
from cloud_bridge.wecom import WeComAdapter

__all__ = [
    "BackendAdapter",
    "BookingPage",
    "Bridge",
    "BridgeCounters",
    "BridgeStats",
    "CloudAuthError",
    "CloudConfigError",
    "CloudConnectError",
    "CloudError",
    "CloudResponseError",
    "CloudTimeoutError",
    "DingTalkAdapter",
    "GeofenceSource",
    "LeaveBalanceSource",
    "LeaveRecord",
    "PhotoUnavailableError",
    "RoomSource",
    "RosterChanges",
    "RosterPage",
    "ShiftSource",
    "TokenBucket",
    "UploadOutcome",
    "UploadResult",
    "WeComAdapter",
    "load_adapter",
    "read_status",
]
