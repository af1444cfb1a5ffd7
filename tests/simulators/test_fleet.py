"""Fleet runs and the ``tack sim`` commands, against a real Mosquitto and a stand-in ack peer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from devices.protocol import Envelope, ReasonCode
from simulators.backend import BackendServer
from simulators.cli import app, cards_from_backend
from simulators.devices import (
    FleetConfig,
    FleetError,
    FleetSnapshot,
    fleet_device_ids,
    planned_punches,
    run_fleet,
)
from simulators.mosquitto import Mosquitto, free_port
from tests.fixtures.ack_responder import AckResponder, gateway_like, reject

runner = CliRunner()


def test_device_ids() -> None:
    cfg = FleetConfig(site="s", state_dir=Path("."), devices=3)
    assert fleet_device_ids(cfg) == ["term-001", "term-002", "term-003"]
    wide = FleetConfig(site="s", state_dir=Path("."), devices=1200, device_prefix="k")
    assert fleet_device_ids(wide)[-1] == "k1200"
    assert (
        planned_punches(FleetConfig(site="s", state_dir=Path("."), rate_per_s=15, duration_s=2))
        == 30
    )
    assert (
        planned_punches(FleetConfig(site="s", state_dir=Path("."), devices=50, duration_s=1)) == 5
    )
    with pytest.raises(ValueError, match="rate_per_s"):
        FleetConfig(site="s", state_dir=Path("."), rate_per_s=0)


async def test_small_fleet_delivers_everything(
    mosquitto: Mosquitto,
    site: str,
    tmp_path: Path,
    ack_responder: Callable[..., AckResponder],
) -> None:
    responder = ack_responder(mosquitto, site)
    ticks: list[FleetSnapshot] = []
    cfg = FleetConfig(
        site=site,
        state_dir=tmp_path,
        host=mosquitto.host,
        port=mosquitto.port,
        devices=3,
        rate_per_s=15.0,
        duration_s=2.0,
        seed=1,
    )
    report = await run_fleet(cfg, on_tick=ticks.append)
    assert report.device_ids == ("term-001", "term-002", "term-003")
    assert report.drained
    assert report.sent == 30
    assert report.sent == report.accepted
    assert (report.undelivered, report.duplicate, report.rejected_total) == (0, 0, 0)
    assert report.ack_latency_p50_ms is not None
    assert report.ack_latency_p99_ms is not None
    assert report.ack_latency_p50_ms <= report.ack_latency_p99_ms
    assert report.seq_ranges == {d: (1, 10) for d in report.device_ids}
    for device_id in report.device_ids:
        assert [e.seq for e in responder.first_copies(device_id)] == list(range(1, 11))
    assert {e.body.credential for e in responder.received} <= {f"C{n:04d}" for n in range(1, 21)}
    assert ticks
    assert ticks[-1].phase == "done"
    assert ticks[-1].accepted == 30
    assert {t.phase for t in ticks} >= {"punching", "done"}


async def test_fleet_with_unknown_cards_reports_rejections(
    mosquitto: Mosquitto,
    site: str,
    tmp_path: Path,
    ack_responder: Callable[..., AckResponder],
) -> None:
    def roster(env: Envelope, copy: int) -> object:
        if env.body.credential.startswith("X"):
            return reject(env, ReasonCode.UNKNOWN_CREDENTIAL)
        return gateway_like(env, copy)

    ack_responder(mosquitto, site, roster)
    cfg = FleetConfig(
        site=site,
        state_dir=tmp_path,
        host=mosquitto.host,
        port=mosquitto.port,
        devices=2,
        rate_per_s=20.0,
        duration_s=1.0,
        cards=("C0001",),
        unknown_card_fraction=0.5,
        seed=7,
    )
    report = await run_fleet(cfg)
    assert report.sent == 20
    assert report.rejected.get("unknown_credential", 0) > 0
    assert report.accepted + report.rejected_total == report.sent
    assert report.undelivered == 0


async def test_fleet_against_the_real_gateway(
    mosquitto: Mosquitto, site: str, tmp_path: Path, gateway_factory: Callable[..., Any]
) -> None:
    cfg = FleetConfig(
        site=site,
        state_dir=tmp_path / "fleet",
        host=mosquitto.host,
        port=mosquitto.port,
        devices=2,
        rate_per_s=20.0,
        duration_s=1.0,
        cards=("C0001", "C0002"),  # active people in the gateway fixture's roster
        unknown_card_fraction=0.2,
        seed=5,
    )
    await gateway_factory(devices=fleet_device_ids(cfg))
    report = await run_fleet(cfg)
    assert report.sent == 20
    assert report.undelivered == 0
    assert report.accepted + report.rejected.get("unknown_credential", 0) == report.sent
    assert set(report.rejected) <= {"unknown_credential"}


async def test_fleet_without_broker_fails_clearly(tmp_path: Path, site: str) -> None:
    cfg = FleetConfig(
        site=site, state_dir=tmp_path, port=free_port(), devices=2, connect_timeout_s=0.5
    )
    with pytest.raises(FleetError, match="did not reach the broker"):
        await run_fleet(cfg)


async def test_on_tick_errors_end_the_run(
    mosquitto: Mosquitto, site: str, tmp_path: Path, ack_responder: Callable[..., AckResponder]
) -> None:
    ack_responder(mosquitto, site)

    def broken(snapshot: FleetSnapshot) -> None:
        if snapshot.phase == "punching":
            raise KeyError("display broke")

    cfg = FleetConfig(
        site=site, state_dir=tmp_path, host=mosquitto.host, port=mosquitto.port, duration_s=30
    )
    with pytest.raises(KeyError, match="display broke"):
        await run_fleet(cfg, on_tick=broken)


def test_cards_from_backend(backend: BackendServer) -> None:
    cards = cards_from_backend(backend.base_url)
    assert cards == [f"C{n:04d}" for n in range(1, 21)]


# -- tack sim -----------------------------------------------------------------------------------


def test_cli_ids() -> None:
    result = runner.invoke(app, ["ids", "--devices", "2"])
    assert result.exit_code == 0
    assert result.stdout.split() == ["term-001", "term-002"]


def test_cli_fleet_summary_and_exit_status(
    mosquitto: Mosquitto,
    site: str,
    tmp_path: Path,
    ack_responder: Callable[..., AckResponder],
    backend: BackendServer,
) -> None:
    ack_responder(mosquitto, site)
    args = [
        "fleet",
        *("--host", mosquitto.host, "--port", str(mosquitto.port), "--site", site),
        *("--devices", "2", "--rate", "10", "--duration", "0.5"),
        *("--state-dir", str(tmp_path / "fleet"), "--report", str(tmp_path / "r.json")),
        *("--cards-from-backend", backend.base_url),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "undelivered" in result.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["sent"] == report["accepted"] == 5
    assert report["undelivered"] == 0


def test_cli_fleet_with_undelivered_punches_exits_1(
    mosquitto: Mosquitto, site: str, tmp_path: Path
) -> None:
    # no ack peer at all: every punch stays in its outbox
    args = [
        "fleet",
        *("--host", mosquitto.host, "--port", str(mosquitto.port), "--site", site),
        *("--devices", "1", "--rate", "5", "--duration", "0.3", "--drain-timeout", "0.2"),
        *("--state-dir", str(tmp_path)),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "undelivered" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["fleet", "--devices", "0"], "--devices"),
        (["fleet", "--rate", "abc"], "--rate"),
        (["fleet", "--site", "a/b"], "site"),
        (["fleet", "--cards", "C1", "--cards-from-backend", "http://127.0.0.1:9"], "not both"),
        (["punch", "--device", "d1"], "exactly one"),
        (["punch", "--device", "bad/id", "--card", "C1"], "device id"),
    ],
)
def test_cli_bad_arguments_give_messages_not_tracebacks(args: list[str], needle: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert needle in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_cli_fleet_without_broker(tmp_path: Path) -> None:
    args = ["fleet", "--port", str(free_port()), "--connect-timeout", "0.3"]
    result = runner.invoke(app, [*args, "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "did not reach the broker" in result.stderr


def test_cli_punch_prints_the_verdict(
    mosquitto: Mosquitto, site: str, tmp_path: Path, ack_responder: Callable[..., AckResponder]
) -> None:
    ack_responder(mosquitto, site)
    base = [
        "punch",
        *("--host", mosquitto.host, "--port", str(mosquitto.port), "--site", site),
        *("--device", "term-042", "--state-dir", str(tmp_path)),
    ]
    first = runner.invoke(app, [*base, "--card", "C0007"])
    assert first.exit_code == 0, first.output
    assert "accepted" in first.stdout
    assert "Welcome C0007" in first.stdout
    second = runner.invoke(app, [*base, "--emp", "E0001"])
    assert second.exit_code == 0
    assert "seq 2" in second.stderr
    assert "boot 2" in second.stderr
