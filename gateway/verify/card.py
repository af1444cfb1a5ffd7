"""Card and employee-number check against the roster the bridge pulls from the backend, for a
punch and for a terminal's query alike.

The roster is cached in memory and reloaded when the bridge bumps ``roster.version``; a
credential not in the cache is looked up in the table once before it is refused, so a person
added a moment ago can clock in at once.
"""

from __future__ import annotations

import aiosqlite

from devices.protocol import CredentialType, Envelope, PunchBody, QueryBody, ReasonCode, Verdict
from gateway.store.devices import Device
from gateway.store.roster import ROSTER_VERSION_KEY, Person, get_value, load_people
from gateway.verify import Decision


class RosterVerifier:
    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._version: str | None = None
        self._by_card: dict[str, Person] = {}
        self._by_employee: dict[str, Person] = {}

    @property
    def people(self) -> int:
        return len(
            {p.person_id for p in self._by_card.values()}
            | {p.person_id for p in self._by_employee.values()}
        )

    async def reload_if_changed(self) -> bool:
        version = await get_value(self._db, ROSTER_VERSION_KEY)
        if version == self._version:
            return False
        people = await load_people(self._db)
        self._by_card = {p.card: p for p in people if p.card}
        self._by_employee = {p.employee_no: p for p in people if p.employee_no}
        self._version = version
        return True

    async def verify(self, envelope: Envelope, device: Device) -> Decision:
        body = envelope.body
        # A query names its person as a punch does, and is refused for the same reasons.
        if not isinstance(body, (PunchBody, QueryBody)):
            raise TypeError(f"RosterVerifier checks punches and queries, not {envelope.kind}")
        person = self._find(body)
        if person is None and await self.reload_if_changed():
            person = self._find(body)
        if person is None:
            what = "card" if body.credential_type is CredentialType.CARD else "employee number"
            return Decision(
                False,
                ReasonCode.UNKNOWN_CREDENTIAL,
                Verdict(ok=False, text=f"Unknown {what}: please see facilities"),
            )
        if not person.active:
            return Decision(
                False,
                ReasonCode.PERSON_INACTIVE,
                Verdict(ok=False, name=person.name, text="Not active: please see HR"),
                person,
            )
        return Decision(
            True, ReasonCode.OK, Verdict(ok=True, name=person.name, text="Clocked in"), person
        )

    def _find(self, body: PunchBody | QueryBody) -> Person | None:
        table = (
            self._by_card if body.credential_type is CredentialType.CARD else (self._by_employee)
        )
        return table.get(body.credential)
