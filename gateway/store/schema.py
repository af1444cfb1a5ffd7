"""The store's tables. One SQLite file in WAL mode holds buffered records, the device registry,
the roster pulled from the backend and the bridge's cursors.

Configuration never lives here, so a config change can never wipe buffered records; synced data
(people, cursors) and buffered data (records) sit in separate tables for the same reason.
"""

from __future__ import annotations

import sqlite3

import aiosqlite

from gateway.store.errors import StoreError

SCHEMA_VERSION = 13

_DDL_V1 = """
CREATE TABLE IF NOT EXISTS records (
    id              INTEGER PRIMARY KEY,
    device_id       TEXT    NOT NULL,
    msg_id          TEXT    NOT NULL,
    seq             INTEGER NOT NULL,
    kind            TEXT    NOT NULL,
    device_ts_ms    INTEGER NOT NULL,
    received_ts_ms  INTEGER NOT NULL,
    person_id       TEXT,
    credential      TEXT,
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    verdict         TEXT    NOT NULL,
    sync_state      TEXT    NOT NULL,
    sync_attempts   INTEGER NOT NULL DEFAULT 0,
    sync_error      TEXT,
    synced_ts_ms    INTEGER,
    UNIQUE (device_id, msg_id)
);
CREATE INDEX IF NOT EXISTS records_pending ON records (id) WHERE sync_state = 'pending';
CREATE INDEX IF NOT EXISTS records_device_seq ON records (device_id, seq);

CREATE TABLE IF NOT EXISTS devices (
    device_id       TEXT PRIMARY KEY,
    site            TEXT    NOT NULL,
    device_type     TEXT    NOT NULL,
    name            TEXT    NOT NULL DEFAULT '',
    revoked         INTEGER NOT NULL DEFAULT 0,
    created_ts_ms   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS presence (
    device_id       TEXT PRIMARY KEY,
    online          INTEGER NOT NULL,
    boot            INTEGER NOT NULL,
    firmware        TEXT,
    changed_ts_ms   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS people (
    person_id       TEXT PRIMARY KEY,
    name            TEXT    NOT NULL,
    card            TEXT,
    employee_no     TEXT,
    department      TEXT    NOT NULL DEFAULT '',
    active          INTEGER NOT NULL DEFAULT 1,
    updated_ts_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS people_card ON people (card);
CREATE INDEX IF NOT EXISTS people_employee_no ON people (employee_no);

CREATE TABLE IF NOT EXISTS kv (
    key             TEXT PRIMARY KEY,
    value           TEXT NOT NULL
);
"""


# v2: camera frames sent with punches (evt/frame), kept beside the records they belong to.
_DDL_V2 = """
CREATE TABLE IF NOT EXISTS frames (
    device_id       TEXT    NOT NULL,
    msg_id          TEXT    NOT NULL,
    sha256          TEXT    NOT NULL,
    bytes           INTEGER NOT NULL,
    data            BLOB    NOT NULL,
    received_ts_ms  INTEGER NOT NULL,
    PRIMARY KEY (device_id, msg_id)
);
"""

# v3: face templates (128-d encodings, AES-256-GCM encrypted; gateway/verify/face/templates.py)
# and the perceptual hashes of frames already used for a punch (replay defence).
_DDL_V3 = """
CREATE TABLE IF NOT EXISTS face_templates (
    id              INTEGER PRIMARY KEY,
    person_id       TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    key_id          TEXT    NOT NULL,
    nonce           BLOB    NOT NULL,
    ciphertext      BLOB    NOT NULL,
    created_ts_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS face_templates_person ON face_templates (person_id);

CREATE TABLE IF NOT EXISTS face_frames (
    device_id       TEXT    NOT NULL,
    msg_id          TEXT    NOT NULL,
    phash           BLOB    NOT NULL,
    person_id       TEXT,
    received_ts_ms  INTEGER NOT NULL,
    PRIMARY KEY (device_id, msg_id)
);
CREATE INDEX IF NOT EXISTS face_frames_ts ON face_frames (received_ts_ms);
"""


# v4: geofences per site (gateway/verify/geo/store.py) and approved leave pulled with the roster
# (gateway/attendance/leave.py); the daily report flags leave days instead of absences.
_DDL_V4 = """
CREATE TABLE IF NOT EXISTS geofences (
    site            TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    spec            TEXT    NOT NULL,
    updated_ts_ms   INTEGER NOT NULL,
    PRIMARY KEY (site, name)
);

CREATE TABLE IF NOT EXISTS leave_days (
    person_id       TEXT    NOT NULL,
    day             TEXT    NOT NULL,
    kind            TEXT    NOT NULL DEFAULT '',
    approved        INTEGER NOT NULL DEFAULT 1,
    updated_ts_ms   INTEGER NOT NULL,
    PRIMARY KEY (person_id, day)
);
CREATE INDEX IF NOT EXISTS leave_days_day ON leave_days (day);
"""


# v5: the bridge's catch-up order (gateway/store/records.py, catchup_batch): pending records by
# device time, then device and sequence, so "today's first, then the backlog oldest first" is
# two range scans of this index instead of a sort of the whole queue every round.
_DDL_V5 = """
CREATE INDEX IF NOT EXISTS records_pending_order
    ON records (device_ts_ms, device_id, seq) WHERE sync_state = 'pending';
"""

# v6 (v5 is the upload side's): what the bridge pulls besides the roster
# (cloud_bridge/downsync.py). People remember the last full roster pass that listed them, so a
# pass can tell whom the backend no longer lists whatever the clock did meanwhile. Geofences
# learn where they came from, so a pull replaces only the backend's fences and never one loaded
# with `tack geofences`; shifts from the backend override the config's
# (gateway/attendance/shifts.py); rooms and bookings for the room service
# (gateway/store/rooms.py); leave balances per person and kind (gateway/attendance/balances.py).
_DDL_V6 = """
ALTER TABLE geofences ADD COLUMN source TEXT NOT NULL DEFAULT 'local';
ALTER TABLE people ADD COLUMN seen_pass INTEGER NOT NULL DEFAULT 0;

CREATE TABLE IF NOT EXISTS shifts (
    source          TEXT    NOT NULL,
    shift_id        TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    team            TEXT    NOT NULL DEFAULT '',
    start_hhmm      TEXT    NOT NULL,
    end_hhmm        TEXT    NOT NULL,
    days            TEXT    NOT NULL,
    grace_in_min    INTEGER NOT NULL,
    grace_out_min   INTEGER NOT NULL,
    opens_min       INTEGER NOT NULL,
    closes_min      INTEGER NOT NULL,
    updated_ts_ms   INTEGER NOT NULL,
    PRIMARY KEY (source, shift_id)
);

CREATE TABLE IF NOT EXISTS rooms (
    room_id         TEXT PRIMARY KEY,
    name            TEXT    NOT NULL,
    capacity        INTEGER NOT NULL DEFAULT 0,
    location        TEXT    NOT NULL DEFAULT '',
    active          INTEGER NOT NULL DEFAULT 1,
    updated_ts_ms   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS bookings (
    booking_id      TEXT PRIMARY KEY,
    room_id         TEXT    NOT NULL,
    start_ms        INTEGER NOT NULL,
    end_ms          INTEGER NOT NULL,
    subject         TEXT    NOT NULL DEFAULT '',
    organizer       TEXT    NOT NULL DEFAULT '',
    attendees       TEXT    NOT NULL DEFAULT '[]',
    status          TEXT    NOT NULL,
    updated_ts      INTEGER NOT NULL,
    pulled_ts_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS bookings_room_start ON bookings (room_id, start_ms);

CREATE TABLE IF NOT EXISTS leave_balances (
    person_id       TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    remaining       REAL    NOT NULL,
    unit            TEXT    NOT NULL,
    updated_ts_ms   INTEGER NOT NULL,
    PRIMARY KEY (person_id, kind)
);
"""


# v7: the meeting-room service (gateway/rooms/). Which room a panel shows; where a booking came
# from; what happened to it at the gateway (check-in, release, end early, extension), kept apart
# from the pulled row so a pull can never undo a change the backend has not heard of yet; and
# the outbox of changes and reminders for the backend, one row per idempotency key, so a change
# is sent until the backend has it and a reminder is sent once whatever restarts.
_DDL_V7 = """
ALTER TABLE devices ADD COLUMN room_id TEXT;
ALTER TABLE bookings ADD COLUMN source TEXT NOT NULL DEFAULT 'backend';

CREATE TABLE IF NOT EXISTS booking_local (
    booking_id      TEXT PRIMARY KEY,
    checked_in_ms   INTEGER,
    released_ms     INTEGER,
    ended_ms        INTEGER,
    end_ms          INTEGER,
    changed_ts_ms   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS room_changes (
    id              INTEGER PRIMARY KEY,
    idem_key        TEXT    NOT NULL UNIQUE,
    op              TEXT    NOT NULL,
    booking_id      TEXT    NOT NULL,
    room_id         TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    verdict         TEXT,
    created_ts_ms   INTEGER NOT NULL,
    sync_state      TEXT    NOT NULL DEFAULT 'pending',
    sync_attempts   INTEGER NOT NULL DEFAULT 0,
    next_try_ms     INTEGER NOT NULL DEFAULT 0,
    sync_error      TEXT,
    synced_ts_ms    INTEGER
);
CREATE INDEX IF NOT EXISTS room_changes_pending ON room_changes (id) WHERE sync_state = 'pending';
"""

# v8: must-read notices (gateway/notices/). A notice once, its targets one row per device with
# the first receipt and its upload state (the bridge uploads receipts from here, so an upload
# survives restarts), and per device a version of its list against the version last published
# on the retained cmd/notice: whoever changes a list (the CLI in another process, a receipt)
# bumps the version, and the gateway publishes until the two agree.
_DDL_V8 = """
CREATE TABLE IF NOT EXISTS notices (
    notice_id       TEXT PRIMARY KEY,
    title           TEXT    NOT NULL DEFAULT '',
    text            TEXT    NOT NULL,
    sender          TEXT,
    created_ts_ms   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS notice_targets (
    notice_id       TEXT    NOT NULL,
    device_id       TEXT    NOT NULL,
    sent_ts_ms      INTEGER,
    receipt_ts_ms   INTEGER,
    receipt_device_ts_ms INTEGER,
    receipt_by      TEXT,
    receipt_person_id TEXT,
    receipt_msg_id  TEXT,
    upload_state    TEXT    NOT NULL DEFAULT 'none',
    upload_attempts INTEGER NOT NULL DEFAULT 0,
    upload_error    TEXT,
    uploaded_ts_ms  INTEGER,
    PRIMARY KEY (notice_id, device_id)
);
CREATE INDEX IF NOT EXISTS notice_targets_unread
    ON notice_targets (device_id) WHERE receipt_ts_ms IS NULL;
CREATE INDEX IF NOT EXISTS notice_targets_upload
    ON notice_targets (receipt_ts_ms) WHERE upload_state = 'pending';

CREATE TABLE IF NOT EXISTS notice_devices (
    device_id       TEXT PRIMARY KEY,
    version         INTEGER NOT NULL,
    published_version INTEGER NOT NULL DEFAULT 0,
    published_ts_ms INTEGER
);
"""

# v9: facilities admin (gateway/admin/, gateway/audit/). Local accounts with argon2 hashes and a
# role; the audit log, each entry carrying the hash of the one before it so that an edited or
# deleted entry breaks the chain (gateway/audit/chain.py).
_DDL_V9 = """
CREATE TABLE IF NOT EXISTS accounts (
    username        TEXT PRIMARY KEY,
    password_hash   TEXT    NOT NULL,
    role            TEXT    NOT NULL,
    disabled        INTEGER NOT NULL DEFAULT 0,
    created_ts_ms   INTEGER NOT NULL,
    changed_ts_ms   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS audit_log (
    id              INTEGER PRIMARY KEY,
    ts_ms           INTEGER NOT NULL,
    actor           TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    target          TEXT    NOT NULL DEFAULT '',
    detail          TEXT    NOT NULL DEFAULT '{}',
    prev_hash       TEXT    NOT NULL,
    hash            TEXT    NOT NULL
);
"""


# v10: data at rest (gateway/security/). The personal fields of a record (credential, card or
# typed id, GPS fix) move into ``sealed`` (AES-256-GCM under keyring key ``key_id``); the
# ``credential`` column is left NULL and ``body`` keeps only the rest. Camera frames are sealed in
# place and name their key. A NULL ``key_id`` marks a row written before v10, still in the clear
# until `tack keys rotate` seals it.
_DDL_V10 = """
ALTER TABLE records ADD COLUMN key_id TEXT;
ALTER TABLE records ADD COLUMN sealed BLOB;
ALTER TABLE frames ADD COLUMN key_id TEXT;
"""

# v11: MQTT credentials (gateway/broker/). One row per broker account: a device (username = its
# device id) or the gateway itself. Only a Mosquitto-format hash is kept; the clear password is
# shown once when it is issued. `tack broker config` and every credential change write
# Mosquitto's password file from this table.
_DDL_V11 = """
CREATE TABLE IF NOT EXISTS mqtt_credentials (
    username        TEXT PRIMARY KEY,
    role            TEXT    NOT NULL,
    password_hash   TEXT    NOT NULL,
    created_ts_ms   INTEGER NOT NULL
);
"""

# v12: sessions of the admin API and web UI (gateway/admin/sessions.py). Only the SHA-256 of a
# session token is kept, so a copy of the store cannot be used to log in; a row ends at its
# expiry, at logout, and with every session of an account whose password, role or state changes.
_DDL_V12 = """
CREATE TABLE IF NOT EXISTS admin_sessions (
    token_sha256    TEXT PRIMARY KEY,
    username        TEXT    NOT NULL,
    csrf_token      TEXT    NOT NULL,
    created_ts_ms   INTEGER NOT NULL,
    last_seen_ts_ms INTEGER NOT NULL,
    expires_ts_ms   INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS admin_sessions_user ON admin_sessions (username);
"""


# v13: a person's punches by time, for the classification of every punch (repeat, late, left
# early: gateway/attendance/store.py, punch_context). Without it each punch scanned the whole
# records table, which grows all year: 2.5-6 ms of CPU a punch at 20,000 records.
_DDL_V13 = """
CREATE INDEX IF NOT EXISTS records_person_punches
    ON records (person_id, device_ts_ms) WHERE kind = 'punch';
"""

_STEPS = (
    _DDL_V1,
    _DDL_V2,
    _DDL_V3,
    _DDL_V4,
    _DDL_V5,
    _DDL_V6,
    _DDL_V7,
    _DDL_V8,
    _DDL_V9,
    _DDL_V10,
    _DDL_V11,
    _DDL_V12,
    _DDL_V13,
)


async def migrate(db: aiosqlite.Connection) -> None:
    """Bring the file to :data:`SCHEMA_VERSION`; refuse a file written by a newer Tack.

    Each step runs in a transaction of its own that first reads the version again and commits
    together with the new one: a crash during an upgrade leaves the file at the last whole
    step, and a second process that opens the file at the same time (the bridge, the CLI)
    waits for the step and then skips it instead of adding a column twice.
    """
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store was written by a newer Tack (schema {version}, this one knows "
            f"{SCHEMA_VERSION}); upgrade Tack or restore a backup"
        )
    if version == SCHEMA_VERSION:
        return
    for number, ddl in enumerate(_STEPS, start=1):
        if version >= number:
            continue
        await db.execute("BEGIN IMMEDIATE")
        try:
            async with db.execute("PRAGMA user_version") as cur:
                row = await cur.fetchone()
            version = int(row[0]) if row else 0
            if version < number:
                for statement in _statements(ddl):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")
                version = number
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        await db.execute("COMMIT")


def _statements(script: str) -> list[str]:
    """The statements of a DDL script, one by one (``execute`` runs one; ``executescript``
    would commit the step's transaction before it starts)."""
    statements, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements
