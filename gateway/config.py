"""Gateway configuration: one TOML file plus ``TACK_*`` environment overrides.

Read once, in the CLI, and passed down as frozen values; library code never reads the
environment. Every option, its default and its environment name are listed in
``docs/configuration.md``; a test keeps that page and this module in step.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from devices.protocol.errors import TackError
from devices.protocol.limits import MAX_SITE_CHARS

ENV_PREFIX = "TACK_"
_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_SITE_CHARS - 1}}}$"


class ConfigError(TackError):
    """Configuration that cannot be used; the message names the option and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MqttSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field("", description="Defaults to tack-gateway-{site}.")
    username: str = ""
    password: str = ""
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_max_s: float = Field(30.0, ge=1)
    tls: bool = Field(False, description="Connect over TLS, verifying the broker's certificate.")
    ca_file: Path | None = Field(
        None, description="CA certificate the broker's is checked against; none = system CAs."
    )


class BrokerSettings(_Section):
    """The Mosquitto this gateway manages (docs/device-credentials.md)."""

    config_dir: Path | None = Field(
        None,
        description="Folder `tack broker config` wrote; credential changes rewrite its password "
        "file and reload the broker. None = the broker is managed elsewhere.",
    )
    pid_file: Path | None = Field(
        None, description="Mosquitto's pid file; defaults to {config_dir}/data/mosquitto.pid."
    )


class StoreSettings(_Section):
    path: Path | None = Field(None, description="Defaults to {data_dir}/tack.db.")
    synchronous: Literal["full", "normal"] = "full"
    max_batch: int = Field(500, ge=1, le=10000, description="Records per group commit.")
    max_pending: int = Field(
        20000, ge=1, description="Messages waiting for a commit before devices hear 'busy'."
    )
    max_size_mb: int = Field(0, ge=0, description="Cap on the database file; 0 = no cap.")
    busy_retry_s: float = Field(5.0, gt=0, description="retry_s sent with busy answers.")


class BridgeSettings(_Section):
    enabled: bool = True
    base_url: str = "http://127.0.0.1:8700"
    app_key: str = "tack-demo"
    app_secret: str = "tack-demo-secret"
    batch_size: int = Field(50, ge=1, le=1000)
    concurrency: int = Field(8, ge=1, le=64, description="Upload calls in flight at once.")
    interval_s: float = Field(1.0, gt=0, description="Idle wait between upload rounds.")
    roster_interval_s: float = Field(60.0, gt=0)
    roster_full_every: int = Field(
        10,
        ge=1,
        description="Every Nth roster pass reads everyone, to notice people removed at the "
        "backend; the others ask only for changes where the backend can. 1 = always full.",
    )
    timeout_s: float = Field(10.0, gt=0)
    backoff_max_s: float = Field(60.0, ge=1)
    adapter: str = Field(
        "dingtalk",
        min_length=1,
        description="Backend adapter: dingtalk, wecom, or one from a tack.backends entry point.",
    )
    rate_per_s: float = Field(
        0.0, ge=0, description="Upload calls per second; 0 = the adapter's declared rate."
    )


class RegistrySettings(_Section):
    refresh_s: float = Field(5.0, gt=0, description="How often roster and devices reload.")


class ShiftSettings(_Section):
    """One shift of the site (``[[attendance.shifts]]``); docs/attendance.md has the rules."""

    name: str = Field("day", min_length=1, max_length=32)
    team: str = Field("", description="Roster department it applies to; empty = everyone else.")
    start: dt.time = dt.time(9, 0)
    end: dt.time = Field(dt.time(18, 0), description="Before start = ends the next day.")
    days: tuple[int, ...] = Field((1, 2, 3, 4, 5), description="ISO weekdays, 1 = Monday.")
    grace_in_min: int = Field(5, ge=0, le=240)
    grace_out_min: int = Field(0, ge=0, le=240)
    opens_min: int = Field(240, ge=0, le=720, description="How early a clock-in counts.")
    closes_min: int = Field(480, ge=0, le=720, description="How late a clock-out counts.")

    @field_validator("days")
    @classmethod
    def _iso_weekdays(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        if not days or any(not 1 <= d <= 7 for d in days):
            raise ValueError("days are ISO weekdays 1 (Monday) to 7 (Sunday), at least one")
        return days


class AttendanceSettings(_Section):
    timezone: str = Field("Asia/Shanghai", description="IANA name; the site's local time.")
    shifts: tuple[ShiftSettings, ...] = (ShiftSettings(),)
    repeat_window_s: int = Field(120, ge=0, le=3600)
    gps_required: bool = False
    accuracy_policy: Literal["contain", "max"] = "contain"
    max_accuracy_m: int = Field(100, ge=1, le=100000)
    missing_accuracy_m: int = Field(50, ge=1, le=100000)
    max_speed_kmh: float = Field(900.0, gt=0)
    max_fix_age_s: float = Field(120.0, gt=0)
    max_fix_ahead_s: float = Field(30.0, ge=0)
    reports_dir: Path | None = Field(None, description="Defaults to {data_dir}/reports.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {name!r}; use an IANA name such as "
                "'Asia/Shanghai' or 'Europe/Berlin'"
            ) from exc
        return name


class FaceSettings(_Section):
    enabled: bool = Field(False, description="Check the camera frame of each punch.")
    frame_wait_s: float = Field(
        2.0, ge=0, le=30, description="How long a punch waits for its camera frame to arrive."
    )
    key_file: Path | None = Field(None, description="Defaults to {data_dir}/face.key.")
    threshold: float = Field(0.61, gt=0, lt=2, description="1:1 distance limit (card + face).")
    threshold_1n: float = Field(0.57, gt=0, lt=2, description="1:N distance limit (face only).")
    margin_1n: float = Field(0.08, ge=0, lt=2, description="1:N lead over the next person.")
    workers: int = Field(2, ge=1, le=64, description="Encoding processes.")
    queue: int = Field(8, ge=0, le=10000, description="Frames waiting for a worker.")
    busy_retry_s: float = Field(2.0, gt=0, description="retry_s sent when the queue is full.")
    max_bytes: int = Field(4_000_000, ge=1024, description="Largest image accepted, in bytes.")
    max_pixels: int = Field(4_000_000, ge=10_000, description="Largest image, width x height.")
    min_face_px: int = Field(60, ge=20, description="Shortest face box accepted, in pixels.")
    min_sharpness: float = Field(12.0, ge=0, description="Laplacian variance over the face.")
    min_brightness: float = Field(35.0, ge=0, le=255, description="Mean grey level, 0-255.")
    replay_max_bits: int = Field(24, ge=0, le=127, description="pHash distance of a replay.")
    replay_window_days: float = Field(30.0, gt=0, description="How long frame hashes are kept.")


class RoomOverride(_Section):
    """Settings of one room (``[[rooms.room]]``) that differ from the site's defaults."""

    id: str = Field(pattern=_ID_PATTERN, description="The room id, as the backend names it.")
    checkin_open_min: int | None = Field(None, ge=0, le=240)
    release_after_min: int | None = Field(None, ge=1, le=240)
    calendar: str = Field("", description="CalDAV calendar path of this room, if any.")
    private: bool | None = Field(None, description="Hide meeting titles on this room's panels.")


class RoomsSettings(_Section):
    """The meeting-room service (docs/meeting-rooms.md)."""

    checkin_open_min: int = Field(5, ge=0, le=240, description="Check-in opens before start.")
    release_after_min: int = Field(
        10, ge=1, le=240, description="A booking nobody checked in to is released after start."
    )
    book_now_min: tuple[int, ...] = Field((15, 30, 45, 60), description="Offered durations.")
    extend_min: tuple[int, ...] = Field((15, 30), description="Offered extensions.")
    remind_min: tuple[int, ...] = Field((15, 5), description="Reminders before start.")
    horizon_h: int = Field(24, ge=1, le=168, description="How far ahead a panel's schedule goes.")
    tick_s: float = Field(15.0, gt=0, le=300, description="How often states are re-evaluated.")
    private: bool = Field(False, description="Panels hide meeting titles (privacy mode).")
    caldav_url: str = ""
    caldav_username: str = ""
    caldav_password: str = ""
    room: tuple[RoomOverride, ...] = ()

    @field_validator("book_now_min", "extend_min", "remind_min")
    @classmethod
    def _minutes(cls, values: tuple[int, ...]) -> tuple[int, ...]:
        if any(not 1 <= v <= 480 for v in values):
            raise ValueError("minutes must each be 1..480")
        return tuple(sorted(set(values)))

    @field_validator("room")
    @classmethod
    def _unique_rooms(cls, rooms: tuple[RoomOverride, ...]) -> tuple[RoomOverride, ...]:
        ids = [r.id for r in rooms]
        if len(ids) != len(set(ids)):
            raise ValueError("each room id may appear once in [[rooms.room]]")
        return rooms

    def override(self, room_id: str) -> RoomOverride | None:
        for r in self.room:
            if r.id == room_id:
                return r
        return None


class KeysSettings(_Section):
    """The keyring that seals personal data at rest (docs/data-protection.md)."""

    file: Path | None = Field(None, description="Defaults to {data_dir}/keyring.json.")


class BackupSettings(_Section):
    """Scheduled, encrypted store backups (docs/data-protection.md)."""

    dir: Path | None = Field(None, description="Defaults to {data_dir}/backups.")
    interval_h: float = Field(
        24.0, ge=0, description="Hours between backups made by the gateway; 0 = none."
    )
    keep: int = Field(7, ge=1, le=10000, description="Newest backups kept; older ones pruned.")


RECORDS_DAYS_MIN = 3


class RetentionSettings(_Section):
    """How long personal data is kept (docs/data-protection.md); 0 = for ever."""

    face_images_days: int = Field(0, ge=0, description="Camera frames older than this go.")
    records_days: int = Field(
        0, ge=0, description="Uploaded or resolved records older than this go; never pending."
    )

    @field_validator("records_days")
    @classmethod
    def _keeps_the_rules_window(cls, days: int) -> int:
        # The classification of a punch reads the person's punches of two days either side
        # (gateway/attendance/recent.py keeps three days in memory): fewer would make a night
        # shift's clock-out forget its clock-in.
        if 0 < days < RECORDS_DAYS_MIN:
            raise ValueError(
                f"records are kept at least {RECORDS_DAYS_MIN} days (the attendance rules read "
                f"a person's punches of the last two days); use 0 to keep them for ever or "
                f"{RECORDS_DAYS_MIN} or more"
            )
        return days


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["logfmt", "json"] = "logfmt"


class AdminSettings(_Section):
    """The admin API and web UI (docs/admin.md)."""

    enabled: bool = Field(False, description="Serve the admin app inside the gateway.")
    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 for every one.")
    port: int = Field(8780, ge=1, le=65535)
    session_lifetime_min: int = Field(
        480, ge=1, le=10080, description="A session ends this long after login, used or not."
    )
    session_idle_min: int = Field(
        30, ge=1, le=10080, description="A session unused this long ends."
    )
    login_max_failures: int = Field(
        5, ge=1, le=1000, description="Failed logins per username or address in the window."
    )
    login_window_s: int = Field(300, ge=1, le=86400, description="The failed-login window.")
    metrics_token: str = Field(
        "", description="Bearer token a Prometheus scraper may use for /metrics; empty = none."
    )
    cookie_secure: bool = Field(
        False, description="Mark the session cookie Secure (serve over HTTPS when set)."
    )


class TackSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", frozen=True, extra="forbid"
    )

    site: str = Field("hq", pattern=_ID_PATTERN)
    data_dir: Path = Path("data")
    mqtt: MqttSettings = MqttSettings()
    broker: BrokerSettings = BrokerSettings()
    store: StoreSettings = StoreSettings()
    bridge: BridgeSettings = BridgeSettings()
    registry: RegistrySettings = RegistrySettings()
    log: LogSettings = LogSettings()
    face: FaceSettings = FaceSettings()
    attendance: AttendanceSettings = AttendanceSettings()
    rooms: RoomsSettings = RoomsSettings()
    keys: KeysSettings = KeysSettings()
    backup: BackupSettings = BackupSettings()
    retention: RetentionSettings = RetentionSettings()
    admin: AdminSettings = AdminSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment overrides them.
        return (env_settings, init_settings)

    @property
    def db_path(self) -> Path:
        return self.store.path or self.data_dir / "tack.db"

    @property
    def face_key_file(self) -> Path:
        return self.face.key_file or self.data_dir / "face.key"

    @property
    def keyring_file(self) -> Path:
        return self.keys.file or self.data_dir / "keyring.json"

    @property
    def backup_dir(self) -> Path:
        return self.backup.dir or self.data_dir / "backups"

    @property
    def audit_head_file(self) -> Path:
        """Where the audit chain's newest id and hash are kept, outside the database."""
        return self.data_dir / "audit.head"

    @property
    def mqtt_client_id(self) -> str:
        return self.mqtt.client_id or f"tack-gateway-{self.site}"


def load_settings(path: Path | None = None, **overrides: Any) -> TackSettings:
    """Read ``path`` (TOML) under the environment's overrides; raise :class:`ConfigError`."""
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(
                f"config file {path} does not exist; give an existing file or leave "
                "--config out to use the defaults"
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    data.update(overrides)
    try:
        return TackSettings(**data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, path)) from exc


def _explain(exc: ValidationError, path: Path | None) -> str:
    where = f"in {path}" if path else "in the defaults"
    lines = [f"invalid configuration ({where} or the TACK_* environment):"]
    for err in exc.errors():
        option = ".".join(str(p) for p in err["loc"])
        env = ENV_PREFIX + "__".join(str(p) for p in err["loc"]).upper()
        if err["type"] == "extra_forbidden":
            lines.append(
                f"  {option}: not an option; check the spelling against docs/configuration.md"
            )
            continue
        got = err.get("input")
        lines.append(f"  {option}: {err['msg']} (got {got!r}); set it in the file or as {env}")
    return "\n".join(lines)
