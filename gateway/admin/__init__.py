"""The facilities admin: accounts and roles, the JSON API, the web UI and /metrics
(docs/admin.md)."""
