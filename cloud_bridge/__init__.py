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
from cloud_bridge.dingtalk import DingTalkAdapter
from cloud_bridge.runner import Bridge, BridgeCounters, BridgeStats, read_status

__all__ = [
    "BackendAdapter",
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
    "LeaveRecord",
    "PhotoUnavailableError",
    "RosterPage",
    "UploadOutcome",
    "UploadResult",
    "read_status",
]
