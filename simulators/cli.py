"""``tack sim``: run simulated clock-in terminals against a broker and a gateway.

``tack sim ids`` prints the fleet's device ids (register them first:
``tack devices add $(tack sim ids --devices 10)``), ``tack sim fleet`` runs the fleet and
``tack sim punch`` sends one punch from one terminal. Heavy imports happen inside commands so
``tack --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import re
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from simulators.devices.fleet import FleetConfig, FleetReport, FleetSnapshot

app = typer.Typer(
    help="Simulated devices: clock-in terminal fleets and single punches.",
    no_args_is_help=True,
)

DEFAULT_BACKEND_APP_KEY = "tack-demo"
DEFAULT_BACKEND_APP_SECRET = "tack-demo-secret"
BACKEND_TIMEOUT_S = 10.0
_USER_PAGE_SIZE = 100
_LOG_EVERY_S = 5.0

HostOption = Annotated[str, typer.Option(help="MQTT broker host.")]
PortOption = Annotated[int, typer.Option(min=1, max=65535, help="MQTT broker port.")]
SiteOption = Annotated[str, typer.Option(help="Site the devices belong to (topic level 3).")]
DevicesOption = Annotated[int, typer.Option(min=1, max=9999, help="Number of terminals.")]
PrefixOption = Annotated[str, typer.Option(help="Device ids are PREFIX001, PREFIX002, ...")]


def _fail(console: Console, message: str, code: int = 1) -> typer.Exit:
    console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def cards_from_backend(
    base_url: str,
    *,
    app_key: str = DEFAULT_BACKEND_APP_KEY,
    app_secret: str = DEFAULT_BACKEND_APP_SECRET,
    timeout_s: float = BACKEND_TIMEOUT_S,
) -> list[str]:
    """Cards of the active people in the backend's roster, through its open API
    (``/gettoken`` then ``/topapi/v2/user/list`` page by page), as the gateway would see them."""
    import httpx

    from devices.protocol import TackError

    url = base_url.rstrip("/")
    try:
        with httpx.Client(base_url=url, timeout=timeout_s) as client:
            token_reply = client.get(
                "/gettoken", params={"appkey": app_key, "appsecret": app_secret}
            ).json()
            if token_reply.get("errcode") != 0:
                raise TackError(
                    f"backend {url} refused the app credentials: {token_reply.get('errmsg')}"
                )
            token = token_reply["access_token"]
            cards: list[str] = []
            cursor: Any = None
            while True:
                page = client.post(
                    "/topapi/v2/user/list",
                    params={"access_token": token},
                    json={"cursor": cursor, "size": _USER_PAGE_SIZE},
                ).json()
                if page.get("errcode") != 0:
                    raise TackError(f"backend {url} user list failed: {page.get('errmsg')}")
                result = page["result"]
                cards.extend(
                    str(p["card"]) for p in result["list"] if p.get("card") and p.get("active")
                )
                if not result.get("has_more"):
                    return cards
                cursor = result["next_cursor"]
    except httpx.HTTPError as exc:
        raise TackError(f"cannot read the roster from {url}: {exc}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise TackError(f"{url} does not answer like the backend simulator: {exc}") from exc


@app.command("ids")
def ids(
    devices: DevicesOption = 3,
    device_prefix: Annotated[str, typer.Option("--prefix", help="Device id prefix.")] = "term-",
) -> None:
    """Print the fleet's device ids, one a line, to register them at the gateway."""
    from simulators.devices.fleet import FleetConfig, fleet_device_ids

    cfg = FleetConfig(site="x", state_dir=Path("."), devices=devices, device_prefix=device_prefix)
    for device_id in fleet_device_ids(cfg):
        typer.echo(device_id)


def _snapshot_table(snap: FleetSnapshot) -> Table:
    table = Table(title=f"fleet: {snap.phase} ({snap.elapsed_s:.1f} s)", title_justify="left")
    for column in ("connected", "sent", "accepted", "dup", "rejected", "resent", "outbox"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{snap.connected}/{snap.devices}",
        f"{snap.sent}/{snap.target}",
        str(snap.accepted),
        str(snap.duplicate),
        str(snap.rejected),
        str(snap.resent),
        str(snap.outbox_depth),
    )
    return table


def _report_table(report: FleetReport) -> Table:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} ms"

    table = Table(title=f"fleet summary, site {report.site}", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    rows = [
        ("devices", str(len(report.device_ids))),
        ("punching", f"{report.punch_s:.1f} s ({report.achieved_rate_per_s:.1f}/s)"),
        ("draining", f"{report.drain_s:.1f} s" + ("" if report.drained else " (gave up)")),
        ("sent", str(report.sent)),
        ("reloaded from outboxes", str(report.reloaded)),
        ("accepted", str(report.accepted)),
        ("duplicate", str(report.duplicate)),
        ("rejected", str(report.rejected_total)),
        *((f"  {reason}", str(n)) for reason, n in sorted(report.rejected.items())),
        ("deferred (transient)", str(sum(report.deferred.values()))),
        ("resent", str(report.resent)),
        ("undelivered", str(report.undelivered)),
        ("ack latency p50", ms(report.ack_latency_p50_ms)),
        ("ack latency p99", ms(report.ack_latency_p99_ms)),
        ("ack latency max", ms(report.ack_latency_max_ms)),
    ]
    for what, value in rows:
        table.add_row(what, value)
    return table


def _progress_line(snap: FleetSnapshot) -> str:
    return (
        f"{snap.elapsed_s:6.1f} s {snap.phase:<10} connected {snap.connected}/{snap.devices} "
        f"sent {snap.sent}/{snap.target} accepted {snap.accepted} dup {snap.duplicate} "
        f"rejected {snap.rejected} resent {snap.resent} outbox {snap.outbox_depth}"
    )


def _run_with_progress(cfg: FleetConfig, err: Console) -> FleetReport:
    """A live table on a terminal; in CI logs, a line per phase change and every few seconds."""
    from rich.live import Live

    from simulators.devices.fleet import run_fleet

    if err.is_terminal:
        with Live(console=err, refresh_per_second=4) as live:

            def on_tick(snap: FleetSnapshot) -> None:
                live.update(_snapshot_table(snap))

            return asyncio.run(run_fleet(cfg, on_tick=on_tick))

    last: list[tuple[str, float]] = [("", 0.0)]

    def on_line(snap: FleetSnapshot) -> None:
        phase, at = last[0]
        if snap.phase != phase or snap.elapsed_s - at >= _LOG_EVERY_S:
            err.print(_progress_line(snap), highlight=False, soft_wrap=True)
            last[0] = (snap.phase, snap.elapsed_s)

    return asyncio.run(run_fleet(cfg, on_tick=on_line))


def _run_firmware_with_progress(cfg: FleetConfig, heap: str | None, err: Console) -> FleetReport:
    from simulators.devices.firmware import ensure_font
    from simulators.devices.firmware_fleet import run_firmware_fleet

    last: list[tuple[str, float]] = [("", 0.0)]

    def on_line(snap: FleetSnapshot) -> None:
        phase, at = last[0]
        if snap.phase != phase or snap.elapsed_s - at >= _LOG_EVERY_S:
            err.print(_progress_line(snap), highlight=False, soft_wrap=True)
            last[0] = (snap.phase, snap.elapsed_s)

    return run_firmware_fleet(cfg, font=ensure_font(), heap=heap, on_tick=on_line)


@app.command("fleet")
def fleet(
    host: HostOption = "127.0.0.1",
    port: PortOption = 1883,
    site: SiteOption = "hq",
    devices: DevicesOption = 3,
    rate: Annotated[
        float, typer.Option(min=0.001, help="Total punches per second across the fleet.")
    ] = 5.0,
    duration: Annotated[float, typer.Option(min=0.0, help="Seconds of punching.")] = 10.0,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Outboxes live here (one folder per device); default: a new temp dir."),
    ] = None,
    cards: Annotated[
        str | None, typer.Option(help="Comma-separated valid cards; default C0001..C0020.")
    ] = None,
    cards_from_backend_url: Annotated[
        str | None,
        typer.Option(
            "--cards-from-backend",
            help="Read the cards from the backend simulator's roster at this URL.",
        ),
    ] = None,
    backend_app_key: Annotated[str, typer.Option(help="App key for --cards-from-backend.")] = (
        DEFAULT_BACKEND_APP_KEY
    ),
    backend_app_secret: Annotated[
        str, typer.Option(help="App secret for --cards-from-backend.")
    ] = DEFAULT_BACKEND_APP_SECRET,
    unknown_cards: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Fraction of punches with unknown cards.")
    ] = 0.0,
    device_prefix: Annotated[str, typer.Option("--prefix", help="Device id prefix.")] = "term-",
    ack_timeout: Annotated[
        float, typer.Option(min=0.05, help="Seconds before an unacknowledged punch is resent.")
    ] = 5.0,
    connect_timeout: Annotated[
        float, typer.Option(min=0.1, help="Seconds for every device to reach the broker.")
    ] = 10.0,
    drain_timeout: Annotated[
        float, typer.Option(min=0.0, help="Seconds to wait for outboxes to empty at the end.")
    ] = 30.0,
    seed: Annotated[int | None, typer.Option(help="Random seed for card choice.")] = None,
    report_path: Annotated[
        Path | None, typer.Option("--report", help="Also write the report as JSON here.")
    ] = None,
    firmware: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=200,
            help="Run this many real MicroPython terminals (firmware/ on the micropython "
            "command) instead of Python ones; replaces --devices.",
        ),
    ] = None,
    heap: Annotated[
        str | None,
        typer.Option(help="With --firmware: micropython heap size, e.g. 64K."),
    ] = None,
) -> None:
    """Run N terminals punching at RATE for DURATION seconds, then wait for every ack.

    Exit status 0 when every punch was delivered (nothing left in any outbox), 1 otherwise.
    The devices must be registered at the gateway first (see `tack sim ids`).
    """
    from devices.protocol import TackError
    from simulators.devices.fleet import DEFAULT_CARDS, FleetConfig, fleet_device_ids

    console = Console()
    err = Console(stderr=True)
    if cards is not None and cards_from_backend_url is not None:
        raise _fail(err, "give --cards or --cards-from-backend, not both", 2)
    if cards_from_backend_url is not None:
        try:
            card_list = cards_from_backend(
                cards_from_backend_url, app_key=backend_app_key, app_secret=backend_app_secret
            )
        except TackError as exc:
            raise _fail(err, exc.message) from exc
        if not card_list:
            raise _fail(err, f"the roster at {cards_from_backend_url} has no active cards")
    elif cards is not None:
        card_list = [c.strip() for c in cards.split(",") if c.strip()]
    else:
        card_list = list(DEFAULT_CARDS)
    workdir = state_dir or Path(tempfile.mkdtemp(prefix="tack-fleet-"))
    try:
        cfg = FleetConfig(
            site=site,
            state_dir=workdir,
            host=host,
            port=port,
            devices=firmware or devices,
            rate_per_s=rate,
            duration_s=duration,
            cards=tuple(card_list),
            unknown_card_fraction=unknown_cards,
            device_prefix=device_prefix,
            ack_timeout_s=ack_timeout,
            connect_timeout_s=connect_timeout,
            drain_timeout_s=drain_timeout,
            seed=seed,
        )
        device_ids = fleet_device_ids(cfg)
        from devices.protocol import topic

        for device_id in device_ids[:1] + device_ids[-1:]:
            topic(site, device_id, "evt", "punch")  # validates site and ids before connecting
    except ValueError as exc:
        raise _fail(err, str(exc), 2) from exc

    if heap is not None and firmware is None:
        raise _fail(err, "--heap applies to --firmware terminals only", 2)
    if heap is not None and not re.fullmatch(r"[1-9][0-9]*[KkMm]?", heap):
        raise _fail(err, f"--heap must be a size like 64K or 2M, got {heap!r}", 2)
    kind = "MicroPython terminals" if firmware else "terminals"
    err.print(
        f"{len(device_ids)} {kind} at site {site} ({device_ids[0]} .. {device_ids[-1]}; "
        f"they must be registered at the gateway), {len(card_list)} cards, "
        f"outboxes in {workdir}",
        highlight=False,
        soft_wrap=True,
    )
    try:
        report = (
            _run_firmware_with_progress(cfg, heap, err)
            if firmware
            else _run_with_progress(cfg, err)
        )
    except TackError as exc:
        raise _fail(err, exc.message) from exc
    except KeyboardInterrupt as exc:
        raise typer.Exit(130) from exc
    console.print(_report_table(report))
    if report_path is not None:
        data = asdict(report)
        data["per_device"] = [asdict(s) for s in report.per_device]
        report_path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    if report.undelivered:
        err.print(
            f"[red]{report.undelivered} punch(es) undelivered[/red]; they stay in the outboxes "
            f"under {workdir} and go out on the next run with the same --state-dir",
            highlight=False,
        )
        raise typer.Exit(1)


@app.command("punch")
def punch(
    device: Annotated[str, typer.Option(help="Device id of the terminal.")],
    card: Annotated[str | None, typer.Option(help="Card number read by the terminal.")] = None,
    emp: Annotated[str | None, typer.Option(help="Employee number typed instead.")] = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 1883,
    site: SiteOption = "hq",
    state_dir: Annotated[
        Path | None,
        typer.Option(
            help="The terminal's outbox folder; default: one per site and device in the temp "
            "dir, so seq continues between calls."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the ack.")] = 10.0,
    username: Annotated[
        str | None,
        typer.Option(help="Broker username; `tack devices add` issues it (the device id)."),
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="TACK_SIM_PASSWORD", help="Broker password of the device."),
    ] = None,
    ca_file: Annotated[
        Path | None,
        typer.Option(help="Connect over TLS trusting this CA (ca.crt of `tack broker config`)."),
    ] = None,
) -> None:
    """Punch once from one terminal and print the verdict.

    Exit status 0 when the gateway accepted it (or already had it), 1 when it was rejected or
    no ack came in time (the punch then stays in the outbox for the next call).
    """
    import concurrent.futures

    from devices.protocol import AckStatus, TackError
    from simulators.devices.terminal import Terminal, TerminalConfig

    console = Console()
    err = Console(stderr=True)
    if (card is None) == (emp is None):
        raise _fail(err, "give exactly one of --card and --emp", 2)
    folder = state_dir or Path(tempfile.gettempdir()) / "tack-sim" / site / device
    try:
        terminal = Terminal(
            TerminalConfig(
                site=site,
                device_id=device,
                state_dir=folder,
                host=host,
                port=port,
                username=username,
                password=password,
                ca_file=ca_file,
            )
        )
    except ValueError as exc:
        raise _fail(err, str(exc), 2) from exc
    try:
        terminal.start()
    except TackError as exc:
        raise _fail(err, exc.message) from exc
    try:
        if not terminal.wait_connected_sync(timeout):
            raise _fail(err, f"no MQTT broker answered at {host}:{port} within {timeout}s")
        handle = terminal.punch(card, emp=emp)
        try:
            ack = handle.result(timeout)
        except (TimeoutError, concurrent.futures.TimeoutError) as exc:
            raise _fail(
                err,
                f"no ack for seq {handle.seq} within {timeout}s (is the gateway running and "
                f"{device} registered?); it stays in the outbox at {folder}",
            ) from exc
        stats = terminal.stats()
    finally:
        terminal.stop()
    verdict = ack.verdict.text if ack.verdict else ack.message or ack.reason.meaning
    colour = "green" if ack.status is not AckStatus.REJECTED else "red"
    console.print(
        f"[{colour}]{ack.status}[/{colour}] ({ack.reason}) {verdict}",
        highlight=False,
        soft_wrap=True,
    )
    latency = (
        f", {stats.last_ack_latency_ms:.0f} ms" if stats.last_ack_latency_ms is not None else ""
    )
    err.print(
        f"{device} seq {handle.seq} id {handle.msg_id} boot {stats.boot}{latency}",
        highlight=False,
    )
    if ack.status is AckStatus.REJECTED:
        raise typer.Exit(1)
