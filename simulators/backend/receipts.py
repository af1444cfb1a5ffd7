"""The simulator's receipt API for must-read notices (gateway/notices/, docs/notices.md).

*Modelled* on DingTalk's open API, not copied from it: DingTalk's blackboard (公告) has no
public call for a receipt read on a device, so ``/topapi/blackboard/receipt/upload`` is this
project's path in that style (token in the query string, errors as HTTP 200 with an
``errcode``). The contract the bridge relies on is what the simulator insists on: every call
carries an ``idempotency_key``, a key is stored once, and a key seen before is answered
``{"duplicate": true}`` and changes nothing. ``drop_answers`` loses the next answers *after*
the receipt was stored, which is the case idempotency keys exist for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from simulators.backend.state import BackendState, Errcode
from simulators.backend.write_api import lost_answer, read_body

RECEIPT_PATH = "/topapi/blackboard/receipt/upload"


class _Receipt(BaseModel):
    model_config = ConfigDict(extra="ignore")
    idempotency_key: str = Field(min_length=1, max_length=200)
    notice_id: str = Field(min_length=1, max_length=64)
    device_id: str = Field(min_length=1, max_length=64)
    read_time: int = Field(gt=0)
    userid: str | None = Field(None, min_length=1, max_length=64)
    reader_credential: str | None = Field(None, min_length=1, max_length=64)


@dataclass
class ReceiptBook:
    """The receipts the backend holds, once per key, and how often each key was sent."""

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    receipts: dict[str, dict[str, Any]] = field(default_factory=dict)
    submissions: dict[str, int] = field(default_factory=dict)
    calls: int = 0
    drop_answers: int = 0

    def store(self, r: _Receipt) -> bool:
        """Store ``r`` unless its key is known; ``True`` when it was (a duplicate)."""
        with self._lock:
            self.calls += 1
            key = r.idempotency_key
            self.submissions[key] = self.submissions.get(key, 0) + 1
            if key in self.receipts:
                return True
            self.receipts[key] = r.model_dump()
            return False

    def answer_lost(self) -> bool:
        with self._lock:
            if self.drop_answers > 0:
                self.drop_answers -= 1
                return True
            return False

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "count": len(self.receipts),
                "receipts": [
                    {**r, "submissions": self.submissions[k]} for k, r in self.receipts.items()
                ],
                "calls": self.calls,
            }


def add_receipt_routes(app: FastAPI, state: BackendState, book: ReceiptBook) -> None:
    """Add the receipt API and its ``/_sim/receipts`` controls to the simulator's app."""

    @app.post(RECEIPT_PATH, response_model=None)
    async def upload_receipt(request: Request, access_token: str | None = None) -> Any:
        receipt = await read_body(state, _Receipt, request, access_token)
        if not isinstance(receipt, _Receipt):
            return receipt
        if receipt.userid is not None and not state.knows_user(receipt.userid):
            return {"errcode": Errcode.UNKNOWN_USERID, "errmsg": f"unknown userid {receipt.userid}"}
        duplicate = book.store(receipt)
        if book.answer_lost():
            return lost_answer()
        return {"errcode": 0, "errmsg": "ok", "result": {"duplicate": duplicate}}

    @app.get("/_sim/receipts")
    async def sim_receipts() -> dict[str, Any]:
        return book.snapshot()

    @app.put("/_sim/receipts/drop_answers", response_model=None)
    async def sim_drop(count: int = 1) -> dict[str, Any]:
        book.drop_answers = max(0, count)
        return {"drop_answers": book.drop_answers}
