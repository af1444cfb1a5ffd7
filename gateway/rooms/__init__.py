"""The meeting-room service (docs/meeting-rooms.md): bookings' state machine, panel commands,
no-show release, reminders, schedules for the panels and the write-back outbox."""

from gateway.rooms.model import BookingState, BookingView, RoomRules, state_at
from gateway.rooms.service import Clock, Outcome, RoomService

__all__ = [
    "BookingState",
    "BookingView",
    "Clock",
    "Outcome",
    "RoomRules",
    "RoomService",
    "state_at",
]
