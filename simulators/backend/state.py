"""What the backend simulator remembers, so a test can ask exactly what arrived and how often.

The HTTP app runs in uvicorn's thread while the test reads from its own, so every method takes
one lock. Records are kept in arrival order, once per idempotency key; every upload call is
also counted per key, which is how a test tells "sent twice, stored once" from "sent once".
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from simulators.backend.directory import Directory, parse_cursor

DEFAULT_TOKEN_TTL_S = 7200  # DingTalk's access token lives two hours
MAX_RECORD_AGE_MS = 180 * 24 * 3600 * 1000  # the upload API refuses punches older than 180 days
MAX_PAGE_SIZE = 100  # DingTalk's user list returns at most 100 people a call
DEFAULT_PAGE_SIZE = 50
MAX_LEAVE_USERS = 100  # getleavestatus takes at most 100 userids a call
MAX_LEAVE_PAGE = 20  # and answers at most 20 leave records a page
DEFAULT_RATE_LIMIT_PER_S = 20  # DingTalk's standard tier: about 20 calls/s per app and API
MAX_BATCH_RECORDS = 100  # the WeCom-style hardware check-in report takes 100 records a call
RATE_WINDOW_S = 1.0
UPLOAD_API = "upload"  # the rate limit is per app and API; these name the two upload APIs
BATCH_API = "batch_upload"
PHOTO_PATH = "/_sim/photos/{userid}.jpg"
_DEPARTMENTS = ("Engineering", "Sales", "Operations", "Finance", "Facilities")


class Errcode:
    """The errcodes this simulator answers with; DingTalk's own values where it has one."""

    OK = 0
    SYSTEM_BUSY = -1
    INVALID_APP_CREDENTIALS = 40089
    INVALID_TOKEN = 40014
    TOKEN_EXPIRED = 42001
    INVALID_PARAMETER = 40035
    UNKNOWN_USERID = 33012
    CHECK_TIME_OUT_OF_RANGE = 850001  # user_check_time older than 180 days: refused for good
    RATE_LIMITED = 90002  # over the per-app call rate; retry after 1 s, 2 s, 4 s
    API_FREQ_OUT_OF_LIMIT = 45009  # the WeCom-style endpoint's rate-limit errcode


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def demo_roster(n: int) -> list[dict[str, Any]]:
    """``n`` people with predictable ids and cards (``u0001`` holds ``C0001``, job ``E0001``).

    The demo, the fleet simulator and tests all call this, so a simulated terminal can pick a
    card the backend (and hence the gateway's roster) knows without any shared state.
    """
    width = max(4, len(str(n)))
    people = []
    for i in range(1, n + 1):
        num = str(i).zfill(width)
        people.append(
            {
                "userid": f"u{num}",
                "name": f"Person {num}",
                "card": f"C{num}",
                "job_number": f"E{num}",
                "dept": _DEPARTMENTS[(i - 1) % len(_DEPARTMENTS)],
                "active": True,
            }
        )
    return people


@dataclass(frozen=True, slots=True)
class StoredRecord:
    arrival: int  # 1-based position in arrival order
    idempotency_key: str
    userid: str
    device_id: str
    device_name: str
    user_check_time: int
    photo_url: str | None
    received_ts_ms: int
    request_id: str


@dataclass(frozen=True, slots=True)
class Leave:
    """One approved leave: ``[start_ms, end_ms)`` as DingTalk reports it."""

    userid: str
    start_ms: int
    end_ms: int
    leave_type: str = "annual"


@dataclass(frozen=True, slots=True)
class Faults:
    """Knobs a test turns to make the backend misbehave. All off by default.

    ``hold_after_commit_s`` stores an upload and then waits before answering, which opens the
    window where the backend has a record but the gateway has not marked it synced.
    ``fail_status`` answers the next N upload calls with HTTP ``fail_status_code`` before
    storing anything; ``throttle`` answers the next N upload calls with errcode 90002.
    ``fail_photos`` answers the next N photo downloads with HTTP 503.

    Upload faults count calls to either upload API. ``retry_after_s`` adds a ``Retry-After``
    header to the ``fail_status`` answers (a 429 storm is ``fail_status_code=429``).
    ``timeouts`` makes the next N calls hang (storing nothing) until the client gives up or the
    faults change. ``expire_tokens_after`` expires every token once that many more upload calls
    have been answered: a token running out in the middle of a batch. ``drop_after_commit``
    stores the next N uploads and then cuts the answer off half-way, so the client sees a
    broken connection and its retry meets the idempotency key. ``clock_skew_ms`` moves the
    backend's clock (record age, token expiry). Until the backend's clock reaches
    ``outage_until_ms`` every API call answers HTTP 503: an outage measured on that clock, which
    a test can run fast.
    """

    hold_after_commit_s: float = 0.0
    fail_status: int = 0
    fail_status_code: int = 500
    throttle: int = 0
    latency_ms: int = 0
    fail_photos: int = 0
    retry_after_s: float = 0.0
    timeouts: int = 0
    expire_tokens_after: int = 0
    drop_after_commit: int = 0
    clock_skew_ms: int = 0
    outage_until_ms: int = 0


@dataclass
class _Calls:
    gettoken: int = 0
    upload: int = 0
    user_list: int = 0
    photo: int = 0
    leave: int = 0
    batch_upload: int = 0
    outage: int = 0  # calls answered 503 by an outage


@dataclass
class BackendState:
    """The simulator's memory. Construct with the app credentials it should accept."""

    app_key: str = "tack-demo"
    app_secret: str = "tack-demo-secret"
    token_ttl_s: float = DEFAULT_TOKEN_TTL_S
    # Calls per second each upload API admits per app (0: no limit). The window runs on real
    # time, whatever ``clock`` says: a client's rate is real.
    rate_limit_per_s: int = DEFAULT_RATE_LIMIT_PER_S
    # The backend's wall clock in ms (record age, token expiry, outages); tests inject a fake.
    clock: Callable[[], int] = now_ms
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _records: list[StoredRecord] = field(default_factory=list, repr=False)
    _by_key: dict[str, StoredRecord] = field(default_factory=dict, repr=False)
    _submissions: Counter[str] = field(default_factory=Counter, repr=False)
    _people: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _tokens: dict[str, int] = field(default_factory=dict, repr=False)  # token -> expiry ms
    _calls: _Calls = field(default_factory=_Calls, repr=False)
    _photos: dict[str, bytes] = field(default_factory=dict, repr=False)
    _leave: list[Leave] = field(default_factory=list, repr=False)
    _faults: Faults = field(default_factory=Faults, repr=False)
    # Bumped whenever faults change, so an upload being held lets go when a test clears them.
    _fault_generation: int = 0
    _admitted: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _rate_limited: Counter[str] = field(default_factory=Counter, repr=False)
    _calls_to_expiry: int = 0  # upload calls left before expire_tokens_after fires
    # Attendance groups, rooms, bookings and leave quotas: the rest of what is pulled.
    directory: Directory = field(default_factory=Directory, repr=False)
    _last_stamp: int = 0  # the latest modification time given out (see _stamp)

    def __post_init__(self) -> None:
        self.directory.clock = self.now_ms

    def _stamp(self) -> int:
        """A modification time (call with the lock held): the backend's clock, but always after
        every one given out before, so a change made after a reader's last page always sorts
        after what it read, even within one millisecond."""
        self._last_stamp = max(self.now_ms(), self._last_stamp + 1)
        return self._last_stamp

    def now_ms(self) -> int:
        """The backend's clock: the injected one, moved by the ``clock_skew_ms`` fault."""
        return self.clock() + self._faults.clock_skew_ms

    # -- tokens -------------------------------------------------------------------------------

    def issue_token(self, app_key: str, app_secret: str) -> tuple[str, int] | None:
        """A fresh token and its lifetime in seconds, or None for wrong credentials."""
        with self._lock:
            self._calls.gettoken += 1
            if not (
                secrets.compare_digest(app_key, self.app_key)
                and secrets.compare_digest(app_secret, self.app_secret)
            ):
                return None
            token = secrets.token_hex(16)
            self._tokens[token] = self.now_ms() + int(self.token_ttl_s * 1000)
            return token, int(self.token_ttl_s)

    def check_token(self, token: str | None) -> int:
        """``Errcode.OK``, ``INVALID_TOKEN`` or ``TOKEN_EXPIRED``."""
        with self._lock:
            expiry = self._tokens.get(token or "")
        if expiry is None:
            return Errcode.INVALID_TOKEN
        if self.now_ms() >= expiry:
            return Errcode.TOKEN_EXPIRED
        return Errcode.OK

    def expire_tokens(self) -> int:
        """Make every issued token expired now (the next call answers 42001)."""
        with self._lock:
            stamp = self.now_ms()
            for token in self._tokens:
                self._tokens[token] = stamp
            return len(self._tokens)

    def revoke_tokens(self) -> int:
        """Forget every issued token (the next call answers 40014)."""
        with self._lock:
            n = len(self._tokens)
            self._tokens.clear()
            return n

    def set_token_ttl(self, ttl_s: float) -> None:
        with self._lock:
            self.token_ttl_s = ttl_s

    # -- records ------------------------------------------------------------------------------

    def in_outage(self) -> bool:
        """True (and counted) while the ``outage_until_ms`` fault holds on the backend's clock."""
        with self._lock:
            down = self.now_ms() < self._faults.outage_until_ms
            if down:
                self._calls.outage += 1
            return down

    def count_upload_call(self, api: str = UPLOAD_API) -> Faults:
        """Count one upload call and consume one-shot faults; returns the faults to apply.

        The returned ``fail_status``/``throttle``/``timeouts``/``drop_after_commit`` are 1 when
        this call must fail that way; at most one of them is.
        """
        with self._lock:
            if api == BATCH_API:
                self._calls.batch_upload += 1
            else:
                self._calls.upload += 1
            f = self._faults
            if self._calls_to_expiry > 0:
                self._calls_to_expiry -= 1
                if self._calls_to_expiry == 0:
                    stamp = self.now_ms()
                    self._tokens = dict.fromkeys(self._tokens, stamp)
            fail = 1 if f.fail_status > 0 else 0
            hang = 1 if not fail and f.timeouts > 0 else 0
            throttle = 1 if not (fail or hang) and f.throttle > 0 else 0
            drop = 1 if not (fail or hang or throttle) and f.drop_after_commit > 0 else 0
            self._faults = replace(
                f,
                fail_status=f.fail_status - fail,
                timeouts=f.timeouts - hang,
                throttle=f.throttle - throttle,
                drop_after_commit=f.drop_after_commit - drop,
            )
            return replace(
                f, fail_status=fail, timeouts=hang, throttle=throttle, drop_after_commit=drop
            )

    def admit(self, api: str) -> bool:
        """Whether the per-app rate limit lets this call of ``api`` through; a refusal is
        counted (``rate_limited`` in the snapshot) and the call does not use up the window."""
        with self._lock:
            if self.rate_limit_per_s <= 0:
                return True
            at_s = time.monotonic()
            window = self._admitted.setdefault(api, deque())
            while window and window[0] <= at_s - RATE_WINDOW_S:
                window.popleft()
            if len(window) >= self.rate_limit_per_s:
                self._rate_limited[api] += 1
                return False
            window.append(at_s)
            return True

    def set_rate_limit(self, calls_per_s: int) -> None:
        with self._lock:
            self.rate_limit_per_s = calls_per_s
            self._admitted.clear()

    def too_old(self, user_check_time_ms: int) -> bool:
        """The upload API refuses punches more than 180 days older than the backend's clock."""
        return self.now_ms() - user_check_time_ms > MAX_RECORD_AGE_MS

    def store_record(
        self,
        *,
        idempotency_key: str,
        userid: str,
        device_id: str,
        device_name: str,
        user_check_time: int,
        photo_url: str | None,
    ) -> tuple[StoredRecord, bool]:
        """Store once per key; returns the stored record and whether it was already there."""
        with self._lock:
            self._submissions[idempotency_key] += 1
            existing = self._by_key.get(idempotency_key)
            if existing is not None:
                return existing, True
            rec = StoredRecord(
                arrival=len(self._records) + 1,
                idempotency_key=idempotency_key,
                userid=userid,
                device_id=device_id,
                device_name=device_name,
                user_check_time=user_check_time,
                photo_url=photo_url,
                received_ts_ms=self.now_ms(),
                request_id=uuid.uuid4().hex,
            )
            self._records.append(rec)
            self._by_key[idempotency_key] = rec
            return rec, False

    def records(self) -> list[dict[str, Any]]:
        """Stored records in arrival order, each with how often it was stored and submitted."""
        with self._lock:
            stored = Counter(r.idempotency_key for r in self._records)
            return [
                {
                    **asdict(r),
                    "stored": stored[r.idempotency_key],
                    "submissions": self._submissions[r.idempotency_key],
                }
                for r in self._records
            ]

    # -- roster -------------------------------------------------------------------------------

    def set_roster(self, people: list[dict[str, Any]]) -> int:
        """Replace the roster. People are kept by ``userid``; paging orders them by it.

        A person who is new or differs from before gets ``modified_time`` now (the backend's
        clock); one left out is gone, and only a full read of the list notices that.
        """
        with self._lock:
            stamp = self._stamp()
            roster = {}
            for p in people:
                person = _person(p)
                old = self._people.get(person["userid"])
                same = old is not None and {**old, "modified_time": 0} == {
                    **person,
                    "modified_time": 0,
                }
                person["modified_time"] = old["modified_time"] if same and old else stamp
                roster[person["userid"]] = person
            self._people = roster
            return len(self._people)

    def knows_user(self, userid: str) -> bool:
        with self._lock:
            return userid in self._people

    def roster_page(
        self, cursor: str | None, size: int, modified_since: int | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """People after ``cursor``, and the next cursor or None.

        Without ``modified_since``: everyone, in userid order, and the keyset cursor is the last
        userid returned, which keeps paging stable when people are added or removed between
        calls (an offset cursor would not). With it: only people modified at or after it,
        oldest change first, and the cursor is ``"{modified_time}:{userid}"``, so a person
        changed while a reader pages moves behind the cursor and is still read. Raises
        ValueError for a cursor of the other kind.
        """
        with self._lock:
            self._calls.user_list += 1
            if modified_since is None:
                ids = sorted(self._people)
                if cursor:
                    ids = [i for i in ids if i > cursor]
            else:
                after = parse_cursor(cursor)
                ids = [
                    p["userid"]
                    for p in sorted(
                        self._people.values(), key=lambda p: (p["modified_time"], p["userid"])
                    )
                    if p["modified_time"] >= modified_since
                    and (after is None or (p["modified_time"], p["userid"]) > after)
                ]
            page = [self._with_avatar(self._people[i]) for i in ids[:size]]
            more = len(ids) > size
        if not more or not page:
            return page, None
        last = page[-1]
        if modified_since is None:
            return page, last["userid"]
        return page, f"{last['modified_time']}:{last['userid']}"

    def _with_avatar(self, person: dict[str, Any]) -> dict[str, Any]:
        """The person as the user list answers: ``avatar`` is the photo's path (the app makes
        it absolute) with a content hash, so the URL changes exactly when the photo does, as
        DingTalk's avatar URLs do; left out when the person has no photo."""
        out = dict(person)
        photo = self._photos.get(person["userid"])
        if photo is not None:
            version = hashlib.sha256(photo).hexdigest()[:12]
            out["avatar"] = PHOTO_PATH.format(userid=person["userid"]) + f"?v={version}"
        return out

    # -- photos -------------------------------------------------------------------------------

    def set_photo(self, userid: str, jpeg: bytes | None) -> None:
        """Give ``userid`` an enrolment photo (``None`` removes it); the avatar URL changes,
        and so does the person's ``modified_time``."""
        with self._lock:
            if jpeg is None:
                self._photos.pop(userid, None)
            else:
                self._photos[userid] = bytes(jpeg)
            if userid in self._people:
                self._people[userid]["modified_time"] = self._stamp()

    def fetch_photo(self, userid: str) -> tuple[bytes | None, bool]:
        """Count one download; the photo (None if there is none) and whether to fail it."""
        with self._lock:
            self._calls.photo += 1
            f = self._faults
            fail = f.fail_photos > 0
            if fail:
                self._faults = replace(f, fail_photos=f.fail_photos - 1)
            return self._photos.get(userid), fail

    # -- leave --------------------------------------------------------------------------------

    def add_leave(
        self, userid: str, start_ms: int, end_ms: int, leave_type: str = "annual"
    ) -> Leave:
        """An approved leave; the leave API reports it to anyone asking about an overlap."""
        if end_ms <= start_ms:
            raise ValueError("a leave must end after it starts")
        leave = Leave(userid, start_ms, end_ms, leave_type)
        with self._lock:
            self._leave.append(leave)
        return leave

    def clear_leave(self) -> None:
        with self._lock:
            self._leave.clear()

    def leave_status(
        self, userids: list[str], start_ms: int, end_ms: int, offset: int, size: int
    ) -> tuple[list[Leave], bool]:
        """Approved leave of ``userids`` overlapping ``[start_ms, end_ms]``, a page at a time
        (in userid, start order); and whether more follow."""
        wanted = set(userids)
        with self._lock:
            self._calls.leave += 1
            hits = sorted(
                (
                    lv
                    for lv in self._leave
                    if lv.userid in wanted and lv.start_ms <= end_ms and lv.end_ms > start_ms
                ),
                key=lambda lv: (lv.userid, lv.start_ms),
            )
        return hits[offset : offset + size], len(hits) > offset + size

    # -- faults and inspection ----------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    @property
    def fault_generation(self) -> int:
        with self._lock:
            return self._fault_generation

    def set_faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults = faults
            self._calls_to_expiry = faults.expire_tokens_after
            self._fault_generation += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "records": len(self._records),
                "keys": len(self._by_key),
                "submissions": sum(self._submissions.values()),
                "duplicates": sum(self._submissions.values()) - len(self._by_key),
                "people": len(self._people),
                "photos": len(self._photos),
                "leave": len(self._leave),
                "tokens_issued": len(self._tokens),
                "token_ttl_s": self.token_ttl_s,
                "calls": asdict(self._calls),
                "faults": asdict(self._faults),
                "rate_limit_per_s": self.rate_limit_per_s,
                "rate_limited": dict(self._rate_limited),
                "clock_ms": self.now_ms(),
            }

    def reset(self) -> None:
        """Forget records, tokens, counters and faults; keep the roster, photos, leave and
        credentials."""
        with self._lock:
            self._records.clear()
            self._by_key.clear()
            self._submissions.clear()
            self._tokens.clear()
            self._calls = _Calls()
            self._faults = Faults()
            self._fault_generation += 1
            self._admitted.clear()
            self._rate_limited.clear()
            self._calls_to_expiry = 0


def _person(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "userid": str(p["userid"]),
        "name": str(p.get("name", "")),
        "card": p.get("card"),
        "job_number": p.get("job_number"),
        "dept": str(p.get("dept", "")),
        "active": bool(p.get("active", True)),
    }
