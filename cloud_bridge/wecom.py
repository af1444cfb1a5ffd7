"""A batch-style upload adapter, after WeCom's hardware check-in report: up to 100 records a
call, with an answer per record, so one refused record does not hold back the other 99.

It shows that :class:`cloud_bridge.adapter.BackendAdapter` serves a batching backend as well
as DingTalk's one-record-per-call API: the runner hands over a round of records and gets one
result per record either way. Only the upload differs; the token, roster, photos and leave
are the DingTalk-style calls the simulator serves (WeCom's own user and leave APIs are not
modelled).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from cloud_bridge.adapter import CloudError, UploadOutcome, UploadResult, cause_of
from cloud_bridge.dingtalk import (
    _PERMANENT_ERRCODES,
    ERR_OK,
    RATE_LIMIT_RETRY_S,
    UPLOADABLE_KINDS,
    DingTalkAdapter,
)
from gateway.store.records import OutRecord

log = logging.getLogger(__name__)

BATCH_PATH = "/cgi-bin/checkin/hardware_report"
RECORDS_PER_CALL = 100  # WeCom's hardware check-in report takes at most 100 records a call
CALLS_PER_S = 20.0  # the simulator's per-app limit for this API, as for DingTalk's upload
ERR_API_FREQ_OUT_OF_LIMIT = 45009  # WeCom's "too many calls"
BATCH_API = "batch_upload"


class WeComAdapter(DingTalkAdapter):
    """Uploads in calls of up to :data:`RECORDS_PER_CALL` records; everything else as
    :class:`DingTalkAdapter`.

    A round's devices are split into up to ``concurrency`` lanes, each device in exactly one;
    lanes send side by side, each its calls one after another, so every device's records reach
    the backend in the order the store handed them over (its sequence order).
    """

    def __init__(
        self, *args: Any, calls_per_s: float = CALLS_PER_S, concurrency: int = 8, **kwargs: Any
    ) -> None:
        super().__init__(*args, calls_per_s=calls_per_s, concurrency=concurrency, **kwargs)
        self._lanes = concurrency

    @property
    def records_per_call(self) -> int:
        return RECORDS_PER_CALL

    async def upload(self, records: Sequence[OutRecord]) -> list[UploadResult]:
        """One result per record, in order. After a call fails as a whole, the rest of the
        round is ``deferred``; after one record must be retried, so are its device's later
        records, so nothing overtakes a record still to be sent."""
        if not records:
            return []
        await self.access_token()
        results: dict[int, UploadResult] = {}
        sendable: list[OutRecord] = []
        for rec in records:
            refusal = _local_refusal(rec)
            if refusal is not None:
                results[rec.record_id] = refusal
            else:
                sendable.append(rec)
        # At least two full calls a lane: more, thinner lanes would mean more, part-full calls.
        lanes = _lanes(sendable, min(self._lanes, len(sendable) // (2 * RECORDS_PER_CALL)))
        for answers in await asyncio.gather(*(self._upload_lane(lane) for lane in lanes)):
            results.update((a.record_id, a) for a in answers)
        return [results[r.record_id] for r in records]

    async def _upload_lane(self, lane: list[OutRecord]) -> list[UploadResult]:
        """One lane's calls in order; after a call fails as a whole the rest of the lane waits,
        and after one record must be retried so do its device's later records."""
        out: list[UploadResult] = []
        blocked: set[str] = set()
        call_failed = False
        for first in range(0, len(lane), RECORDS_PER_CALL):
            chunk = lane[first : first + RECORDS_PER_CALL]
            if call_failed:
                out.extend(_deferred(rec) for rec in chunk)
                continue
            answers = await self._upload_chunk(chunk)
            call_failed = all(a.outcome is UploadOutcome.RETRY for a in answers)
            for rec, answer in zip(chunk, answers, strict=True):
                if rec.device_id in blocked and answer.outcome is UploadOutcome.RETRY:
                    answer = _deferred(rec)
                out.append(answer)
                if answer.outcome is UploadOutcome.RETRY:
                    blocked.add(rec.device_id)
        return out

    async def _upload_chunk(self, chunk: list[OutRecord]) -> list[UploadResult]:
        body = {
            "records": [
                {
                    "userid": rec.person_id,
                    "device_id": rec.device_id,
                    "checkin_time": rec.device_ts_ms // 1000,
                    "idempotency_key": rec.idempotency_key,
                }
                for rec in chunk
            ]
        }
        action = f"uploading {len(chunk)} records from record {chunk[0].record_id}"
        async with self._slots:
            try:
                data = await self._call(
                    "POST", BATCH_PATH, action=action, json=body, api=BATCH_API, paced=True
                )
            except CloudError as exc:
                return [_retry(rec, exc.message, exc.retry_after_s, cause_of(exc)) for rec in chunk]
        code = data["errcode"]
        if code != ERR_OK:
            reason = f"errcode {code}: {data.get('errmsg', '')}"
            hint = None
            if code == ERR_API_FREQ_OUT_OF_LIMIT:
                self._bucket.slow_down(RATE_LIMIT_RETRY_S)
                hint = RATE_LIMIT_RETRY_S
            return [_retry(rec, reason, hint, f"errcode_{code}") for rec in chunk]
        self._bucket.succeeded()
        answers = data.get("results")
        if not isinstance(answers, list) or len(answers) != len(chunk):
            reason = "the batch answer does not list one result per record"
            return [_retry(rec, reason, None, "bad_answer") for rec in chunk]
        return [_record_result(rec, item) for rec, item in zip(chunk, answers, strict=True)]


def _lanes(records: list[OutRecord], n: int) -> list[list[OutRecord]]:
    """Up to ``n`` lanes of whole devices, about equal in records, each in the given order."""
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec.device_id] = counts.get(rec.device_id, 0) + 1
    loads = [0] * max(1, min(n, len(counts)))
    lane_of: dict[str, int] = {}
    for device, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        lane = loads.index(min(loads))
        lane_of[device] = lane
        loads[lane] += count
    lanes: list[list[OutRecord]] = [[] for _ in loads]
    for rec in records:
        lanes[lane_of[rec.device_id]].append(rec)
    return [lane for lane in lanes if lane]


def _record_result(rec: OutRecord, item: object) -> UploadResult:
    if not isinstance(item, dict) or not isinstance(item.get("errcode"), int):
        return _retry(rec, "a record's answer has no errcode", None, "bad_answer")
    code = item["errcode"]
    if code == ERR_OK:
        outcome = UploadOutcome.DUPLICATE if item.get("duplicate") else UploadOutcome.ACCEPTED
        return UploadResult(rec.record_id, outcome, errcode=code)
    reason = f"errcode {code}: {item.get('errmsg', '')}"
    if code in _PERMANENT_ERRCODES:
        return UploadResult(
            rec.record_id, UploadOutcome.REFUSED, reason, errcode=code, cause=f"errcode_{code}"
        )
    return _retry(rec, reason, None, f"errcode_{code}")


def _local_refusal(rec: OutRecord) -> UploadResult | None:
    if rec.kind not in UPLOADABLE_KINDS:
        return UploadResult(
            rec.record_id,
            UploadOutcome.REFUSED,
            f"records of kind {rec.kind!r} have no upload API at this backend",
            cause="kind",
        )
    if not rec.person_id:
        return UploadResult(
            rec.record_id,
            UploadOutcome.REFUSED,
            "the record names no person (its credential matched nobody); nothing to upload",
            cause="no_person",
        )
    return None


def _retry(rec: OutRecord, reason: str, hint: float | None, cause: str) -> UploadResult:
    return UploadResult(rec.record_id, UploadOutcome.RETRY, reason, retry_after_s=hint, cause=cause)


def _deferred(rec: OutRecord) -> UploadResult:
    return UploadResult(
        rec.record_id,
        UploadOutcome.DEFERRED,
        "an earlier record of this device is to be retried first",
    )
