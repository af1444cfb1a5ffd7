"""``tack broker config``: everything a Mosquitto needs to serve Tack's devices, in one folder.

Running it again is safe and is how a change is made: the CA is kept (devices keep trusting
it), the server certificate is kept unless the host names changed, it nears expiry or a renewal
is asked for, the gateway's account is kept unless a reset is asked for, and the password and
ACL files are rewritten from the store.
"""

from __future__ import annotations

import asyncio
import grp
import os
from dataclasses import dataclass
from pathlib import Path

from gateway.broker import credentials
from gateway.broker.errors import BrokerConfigError
from gateway.broker.files import write_atomic
from gateway.broker.mosquitto_conf import CONFIG_FILE, PERSISTENCE_DIR, BrokerInfo, render_config
from gateway.broker.tls import CA_CERT, CA_KEY, ServerCertResult, ensure_ca, ensure_server_cert
from gateway.config import TackSettings

BROKER_GROUP = "mosquitto"


@dataclass(frozen=True, slots=True)
class BrokerSetup:
    out: Path
    config_file: Path
    ca_file: Path
    ca_created: bool
    server_cert: ServerCertResult
    gateway_username: str
    gateway_password: str | None  # only when issued now; never stored in clear
    reload: credentials.ApplyResult
    info: BrokerInfo


async def configure(
    settings: TackSettings,
    out: Path,
    *,
    hosts: list[str],
    port: int,
    bind: str | None,
    local_plain_port: int | None,
    renew_server_cert: bool,
    reset_gateway_password: bool,
    group: str | None,
    actor: str,
) -> BrokerSetup:
    """``actor`` is who the audit log names for a new gateway password (``cli:<user>``)."""
    from gateway.audit import AuditLog
    from gateway.store import open_database

    try:
        out, ca_created, server, info = await asyncio.to_thread(
            _write_files,
            settings.site,
            out,
            hosts=hosts,
            port=port,
            bind=bind,
            local_plain_port=local_plain_port,
            renew_server_cert=renew_server_cert,
            group=group,
        )
    except OSError as exc:
        raise BrokerConfigError(
            f"cannot write {exc.filename or out} ({exc.strerror}); choose an --out folder you "
            "may write, or run the command as its owner (sudo)"
        ) from exc
    managed = settings.model_copy(
        update={"broker": settings.broker.model_copy(update={"config_dir": out})}
    )
    username = credentials.gateway_username(settings)
    db = await open_database(settings.db_path)
    try:
        password = None
        if reset_gateway_password or not await credentials.has_credentials(db, username):
            audit = AuditLog(db, settings.audit_head_file)
            async with audit.recording(actor, "broker.gateway_password", username):
                password = await credentials.issue_gateway(db, username)
        reload = await credentials.apply_files(db, managed)
    finally:
        await db.close()
    return BrokerSetup(
        out=out,
        config_file=out / CONFIG_FILE,
        ca_file=out / CA_CERT,
        ca_created=ca_created,
        server_cert=server,
        gateway_username=username,
        gateway_password=password,
        reload=reload,
        info=info,
    )


def _write_files(
    site: str,
    out: Path,
    *,
    hosts: list[str],
    port: int,
    bind: str | None,
    local_plain_port: int | None,
    renew_server_cert: bool,
    group: str | None,
) -> tuple[Path, bool, ServerCertResult, BrokerInfo]:
    out = out.resolve()
    gid = _gid(group)
    out.mkdir(mode=0o750, parents=True, exist_ok=True)
    (out / PERSISTENCE_DIR).mkdir(mode=0o770, exist_ok=True)
    if gid is not None:
        # setgid folders: files written later (the password file after each device change)
        # get the broker's group as well, so it can still read them after a reload.
        for folder, mode in ((out, 0o2750), (out / PERSISTENCE_DIR, 0o2770)):
            os.chown(folder, -1, gid)
            os.chmod(folder, mode)
    ca_cert, ca_key, ca_created = ensure_ca(out, f"Tack local CA ({site})")
    server = ensure_server_cert(out, ca_cert, ca_key, hosts, renew=renew_server_cert)
    write_atomic(
        out / CONFIG_FILE,
        render_config(out, port=port, bind=bind, local_plain_port=local_plain_port),
        0o644,
    )
    info = BrokerInfo(
        host=hosts[0], port=port, ca_file=str(out / CA_CERT), local_plain_port=local_plain_port
    )
    info.save(out)
    if gid is not None:
        for path in out.iterdir():
            if path.is_file() and path.name != CA_KEY:
                os.chown(path, -1, gid)
    return out, ca_created, server, info


def default_group() -> str | None:
    """The group Mosquitto drops to when started as root (Debian: ``mosquitto``), if we are
    root and it exists; otherwise the broker runs as the user who runs this, and needs none."""
    if os.geteuid() != 0:
        return None
    try:
        grp.getgrnam(BROKER_GROUP)
    except KeyError:
        return None
    return BROKER_GROUP


def _gid(group: str | None) -> int | None:
    if group is None:
        return None
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise BrokerConfigError(
            f"--group {group!r}: no such group; give the group the broker runs as "
            "(`ps -o group= -C mosquitto`), or leave the option out"
        ) from None
