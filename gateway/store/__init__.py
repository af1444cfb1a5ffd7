"""The gateway's durable store: one SQLite file (WAL) reached through aiosqlite."""

from gateway.store.database import open_database
from gateway.store.errors import StoreError, StoreFullError

__all__ = ["StoreError", "StoreFullError", "open_database"]
