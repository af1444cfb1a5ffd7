"""The batch-style (WeCom-like) adapter: 100 records a call, refusals answered per record, and
chosen by ``bridge.adapter`` through the ``tack.backends`` entry points."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from cloud_bridge.registry import load_adapter
from cloud_bridge.runner import Bridge
from cloud_bridge.wecom import BATCH_PATH, RECORDS_PER_CALL, WeComAdapter
from gateway.config import ConfigError
from gateway.store.records import SyncState, now_ms
from simulators.backend import BackendServer, Errcode, Faults
from tests.cloud_bridge.helpers import bridge_settings, eventually, insert_records, sync_states

DAY_MS = 24 * 3600 * 1000


async def settled(db_path: Path) -> bool:
    states = await sync_states(db_path)
    return all(s != SyncState.PENDING for s, _ in states.values())


async def test_one_refused_record_in_a_batch_does_not_hold_back_the_rest(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url, adapter="wecom", batch_size=250)
    people: list[str | None] = [f"u{(i % 20) + 1:04d}" for i in range(250)]
    people[120] = "ghost"  # unknown at the backend: refused for good
    keys = await insert_records(settings.db_path, people)
    old = await insert_records(
        settings.db_path, ["u0001"], device_id="term-02", device_ts_ms=now_ms() - 200 * DAY_MS
    )

    async with Bridge(settings) as bridge:
        await eventually(lambda: settled(settings.db_path), "every record synced or failed")
        stats = await bridge.stats()
        assert isinstance(bridge.adapter, WeComAdapter)

    states = await sync_states(settings.db_path)
    assert states[keys[120]] == (SyncState.FAILED, "errcode 33012: unknown userid ghost")
    assert states[old[0]][0] == SyncState.FAILED
    assert "850001" in (states[old[0]][1] or "")
    good = keys[:120] + keys[121:]
    assert {states[k][0] for k in good} == {SyncState.SYNCED}
    stored = backend.state.records()
    assert [r["idempotency_key"] for r in stored] == good  # in order, each once
    # Today's 250 first (100 + 100 + 50 a call), then the backlog's one old punch.
    assert backend.state.snapshot()["calls"]["batch_upload"] == 4
    assert stats.counters.refusal_causes == {"errcode_33012": 1, "errcode_850001": 1}


async def test_a_failed_batch_call_is_retried_whole_and_stored_once(
    backend: BackendServer, tmp_path: Path
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url, adapter="wecom", batch_size=200)
    keys = await insert_records(settings.db_path, [f"u{(i % 20) + 1:04d}" for i in range(200)])
    backend.state.set_faults(Faults(drop_after_commit=1, throttle=1))
    async with Bridge(settings):
        await eventually(lambda: settled(settings.db_path), "every record synced")
    states = await sync_states(settings.db_path)
    assert {states[k][0] for k in keys} == {SyncState.SYNCED}
    stored = backend.state.records()
    assert [r["idempotency_key"] for r in stored] == keys
    assert max(int(r["submissions"]) for r in stored) == 2  # the dropped call's batch, replayed


def test_the_simulator_refuses_more_than_100_records_a_call(backend: BackendServer) -> None:
    with httpx.Client(base_url=backend.base_url) as client:
        token = client.get(
            "/gettoken", params={"appkey": "tack-demo", "appsecret": "tack-demo-secret"}
        ).json()["access_token"]
        record = {"userid": "u0001", "device_id": "t", "checkin_time": now_ms() // 1000}
        body = {
            "records": [
                {**record, "idempotency_key": f"t:{i}"} for i in range(RECORDS_PER_CALL + 1)
            ]
        }
        answer = client.post(BATCH_PATH, params={"access_token": token}, json=body).json()
    assert answer["errcode"] == Errcode.INVALID_PARAMETER
    assert "at most 100" in answer["errmsg"]
    assert backend.state.records() == []


def test_an_unknown_adapter_name_lists_the_installed_ones(tmp_path: Path) -> None:
    settings = bridge_settings(tmp_path, "http://127.0.0.1:9", adapter="feishu")
    with pytest.raises(ConfigError, match="choose one of dingtalk, wecom"):
        load_adapter(settings)
