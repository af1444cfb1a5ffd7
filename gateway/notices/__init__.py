"""Must-read notices (必达): an admin sends a notice to chosen devices, each device shows it
until a person acknowledges it, and the receipt is recorded and uploaded (docs/notices.md)."""
