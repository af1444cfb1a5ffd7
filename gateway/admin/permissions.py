"""The one table that says what each role may do.

Every route of the admin app declares one permission from here (or says it is public), and the
route-table test (tests/admin/test_route_permissions.py) checks every route against this table,
so a new route cannot be added without deciding who may call it. ``docs/admin.md`` shows the
table as a matrix made by :func:`matrix_markdown`, and a test keeps the two in step.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    ADMIN = "admin"
    FACILITIES = "facilities"
    VIEWER = "viewer"


class Permission(enum.StrEnum):
    SESSION = "session"  # being logged in at all: log out, who am I
    DASHBOARD_READ = "dashboard.read"
    DEVICES_READ = "devices.read"
    DEVICES_WRITE = "devices.write"
    PEOPLE_READ = "people.read"
    FACES_READ = "faces.read"
    FACES_WRITE = "faces.write"
    RECORDS_READ = "records.read"
    RECORDS_EXPORT = "records.export"
    ROOMS_READ = "rooms.read"
    NOTICES_READ = "notices.read"
    NOTICES_WRITE = "notices.write"
    BACKUPS_READ = "backups.read"
    BACKUPS_WRITE = "backups.write"
    AUDIT_READ = "audit.read"
    ACCOUNTS_READ = "accounts.read"
    ACCOUNTS_WRITE = "accounts.write"
    METRICS_READ = "metrics.read"


# What each permission lets a person do, as the matrix in docs/admin.md says it.
DESCRIPTIONS: dict[Permission, str] = {
    Permission.SESSION: "log out, see their own account",
    Permission.DASHBOARD_READ: "see the dashboard",
    Permission.DEVICES_READ: "list devices, their presence and firmware",
    Permission.DEVICES_WRITE: "add devices (and get their MQTT password), revoke them",
    Permission.PEOPLE_READ: "list people of the roster and how many face templates each has",
    Permission.FACES_READ: "see face images (the camera frames of punches)",
    Permission.FACES_WRITE: "enrol a face from a photo, delete a person's face templates",
    Permission.RECORDS_READ: "query attendance and panel records",
    Permission.RECORDS_EXPORT: "export records as CSV",
    Permission.ROOMS_READ: "list rooms with today's bookings",
    Permission.NOTICES_READ: "list notices not yet read",
    Permission.NOTICES_WRITE: "send must-read notices to devices",
    Permission.BACKUPS_READ: "list backups",
    Permission.BACKUPS_WRITE: "create a backup",
    Permission.AUDIT_READ: "read, verify and export the audit log",
    Permission.ACCOUNTS_READ: "list admin accounts",
    Permission.ACCOUNTS_WRITE: "create accounts, change roles, disable accounts",
    Permission.METRICS_READ: "scrape /metrics",
}

_EVERYONE = frozenset(
    {
        Permission.SESSION,
        Permission.DASHBOARD_READ,
        Permission.DEVICES_READ,
        Permission.PEOPLE_READ,
        Permission.RECORDS_READ,
        Permission.ROOMS_READ,
        Permission.NOTICES_READ,
    }
)
_FACILITIES = _EVERYONE | {
    Permission.DEVICES_WRITE,
    Permission.FACES_READ,
    Permission.FACES_WRITE,
    Permission.RECORDS_EXPORT,
    Permission.NOTICES_WRITE,
    Permission.BACKUPS_READ,
    Permission.METRICS_READ,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.ADMIN: frozenset(Permission),
    Role.FACILITIES: frozenset(_FACILITIES),
    # A viewer never sees a face image: FACES_READ stays out of this set.
    Role.VIEWER: _EVERYONE,
}


def allowed(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]


def matrix_markdown() -> str:
    """The permission matrix as the Markdown table in docs/admin.md."""
    roles = list(Role)
    lines = [
        "| permission | what it allows | " + " | ".join(roles) + " |",
        "|---|---|" + "---|" * len(roles),
    ]
    for p in Permission:
        marks = " | ".join("yes" if allowed(r, p) else "-" for r in roles)
        lines.append(f"| `{p}` | {DESCRIPTIONS[p]} | {marks} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m gateway.admin.permissions > the matrix for docs/admin.md
    print(matrix_markdown(), end="")
