"""Attendance: the shift policy that classifies punches, leave, and the daily report."""

from gateway.attendance.policy import (
    Classification,
    Direction,
    Policy,
    PunchStatus,
    Shift,
    ShiftInstance,
)

__all__ = ["Classification", "Direction", "Policy", "PunchStatus", "Shift", "ShiftInstance"]
