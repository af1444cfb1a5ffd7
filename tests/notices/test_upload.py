"""The bridge uploads must-read receipts to the backend simulator over real HTTP: once per
notice and device, through a lost answer and a bridge restart, with refusals kept."""

from __future__ import annotations

from pathlib import Path

import httpx

from cloud_bridge.runner import Bridge
from gateway.config import TackSettings
from gateway.notices import store
from gateway.store.database import open_database
from gateway.store.roster import Person, upsert_people
from simulators.backend import BackendServer
from simulators.backend.state import Faults
from tests.cloud_bridge.helpers import bridge_settings, eventually

HOUR_MS = 3_600_000


async def _seed(settings: TackSettings, reads: dict[str, str | None]) -> str:
    """A notice to every device in ``reads``, read on each with the credential given."""
    db = await open_database(settings.db_path)
    try:
        # C0001 is u0001 at the backend too; u9999 exists only at the gateway.
        await upsert_people(
            db,
            [Person("u0001", "Person 0001", card="C0001"), Person("u9999", "Gone", card="C9999")],
        )
        notice = await store.create_notice(
            db, title="", text="Read me", sender=None, device_ids=list(reads)
        )
        for n, (device_id, by) in enumerate(reads.items()):
            await store.record_receipt(
                db,
                notice_id=notice.notice_id,
                device_id=device_id,
                device_ts_ms=1767225600000 + n,
                by=by,
                msg_id=f"{device_id}-r1",
            )
    finally:
        await db.close()
    return notice.notice_id


async def _targets(settings: TackSettings, notice_id: str) -> dict[str, store.Target]:
    db = await open_database(settings.db_path)
    try:
        return {t.device_id: t for t in await store.targets(db, notice_id)}
    finally:
        await db.close()


async def _uploaded(backend: BackendServer) -> dict[str, dict[str, object]]:
    async with httpx.AsyncClient() as client:
        data = (await client.get(f"{backend.base_url}/_sim/receipts")).json()
    return {r["idempotency_key"]: r for r in data["receipts"]}


async def test_receipts_are_uploaded_once_even_when_an_answer_is_lost(
    tmp_path: Path, backend: BackendServer
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url)
    nid = await _seed(settings, {"term-1": "C0001", "term-2": None})
    async with httpx.AsyncClient() as client:
        url = f"{backend.base_url}/_sim/receipts/drop_answers"
        (await client.put(url, params={"count": 1})).raise_for_status()

    async with Bridge(settings, backoff_base_s=0.01) as bridge:

        async def both_synced() -> bool:
            states = {d: t.upload_state for d, t in (await _targets(settings, nid)).items()}
            return states == {"term-1": "synced", "term-2": "synced"}

        await eventually(both_synced, "both receipts synced")
        assert bridge.receipts is not None
        assert bridge.receipts.counters.duplicates == 1  # the retry met the idempotency key

    uploaded = await _uploaded(backend)
    assert sorted(uploaded) == [f"{nid}:term-1", f"{nid}:term-2"]
    assert sorted(r["submissions"] for r in uploaded.values()) == [1, 2]
    first = uploaded[f"{nid}:term-1"]
    assert (first["userid"], first["reader_credential"]) == ("u0001", "C0001")
    assert uploaded[f"{nid}:term-2"]["userid"] is None


async def test_pending_receipts_survive_a_bridge_restart(
    tmp_path: Path, backend: BackendServer
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url)
    nid = await _seed(settings, {"term-1": "C0001"})
    backend.state.set_faults(Faults(outage_until_ms=backend.state.now_ms() + HOUR_MS))

    async with Bridge(settings, backoff_base_s=0.01):

        async def attempted() -> bool:
            target = (await _targets(settings, nid))["term-1"]
            return target.upload_error is not None

        await eventually(attempted, "a failed upload attempt")
    target = (await _targets(settings, nid))["term-1"]
    assert target.upload_state == "pending"
    assert (await _uploaded(backend)) == {}

    backend.state.set_faults(Faults())
    async with Bridge(settings, backoff_base_s=0.01):

        async def synced() -> bool:
            return (await _targets(settings, nid))["term-1"].upload_state == "synced"

        await eventually(synced, "the receipt synced by the second bridge")
    assert list(await _uploaded(backend)) == [f"{nid}:term-1"]


async def test_a_refused_receipt_is_kept_failed_with_the_reason(
    tmp_path: Path, backend: BackendServer
) -> None:
    settings = bridge_settings(tmp_path, backend.base_url)
    nid = await _seed(settings, {"term-1": "C9999", "term-2": "C0001"})

    async with Bridge(settings, backoff_base_s=0.01):

        async def settled() -> bool:
            states = {t.upload_state for t in (await _targets(settings, nid)).values()}
            return states == {"failed", "synced"}

        await eventually(settled, "one receipt refused, one synced")
    refused = (await _targets(settings, nid))["term-1"]
    assert refused.upload_state == "failed"
    assert refused.upload_error is not None
    assert "33012" in refused.upload_error
    assert list(await _uploaded(backend)) == [f"{nid}:term-2"]
