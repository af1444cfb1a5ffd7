"""A backend adapter from another package, installed beside Tack, is found through the
``tack.backends`` entry point group and runs the bridge: uploads, roster, and exactly the
optional pulls it implements.

The package is real files in a temporary directory on ``sys.path``: a module and a
``.dist-info`` with ``entry_points.txt``, which is what ``pip install`` leaves behind, so
``importlib.metadata`` finds it the way it finds any installed distribution.
"""

from __future__ import annotations

import sqlite3
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud_bridge.capabilities import capabilities_of
from cloud_bridge.registry import available, load_adapter
from cloud_bridge.runner import Bridge
from gateway.config import ConfigError
from gateway.store.database import open_database
from gateway.verify.geo.fence import Circle
from gateway.verify.geo.store import replace_fences
from tests.cloud_bridge.helpers import bridge_settings, eventually, insert_records, people

PACKAGE = '''
"""An in-memory backend: what a third party's adapter package looks like (docs/adapters.md)."""

from __future__ import annotations

import datetime as dt

from cloud_bridge.adapter import (
    PhotoUnavailableError, RosterPage, UploadOutcome, UploadResult,
)
from gateway.attendance.policy import Shift
from gateway.store.roster import Person

UPLOADED: list[str] = []


class AcmeAdapter:
    batch_size = 10
    records_per_call = 10
    calls_per_s = 5.0

    async def upload(self, records):
        UPLOADED.extend(r.idempotency_key for r in records)
        return [UploadResult(r.record_id, UploadOutcome.ACCEPTED) for r in records]

    async def pull_roster(self, cursor):
        people = [Person("a1", "Ada", card="A1"), Person("a2", "Bo", card="A2")]
        return RosterPage(people, None, False)

    async def fetch_photo(self, url):
        raise PhotoUnavailableError(f"no photos at acme: {url}", reason="photo_missing")

    async def leave(self, person_ids, start_ms, end_ms):
        return []

    async def shifts(self):  # one optional capability; no geofences, rooms or balances
        return [("acme-day", Shift("acme day", dt.time(8), dt.time(17)))]

    async def aclose(self):
        pass


def build(settings, *, client=None, on_call=None):
    return AcmeAdapter()
'''

ENTRY_POINTS = """
[tack.backends]
acme = acme_tack:build
"""


@pytest.fixture
def acme_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site-packages"
    (site / "acme_tack").mkdir(parents=True)
    (site / "acme_tack" / "__init__.py").write_text(textwrap.dedent(PACKAGE), encoding="utf-8")
    dist = site / "acme_tack-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-tack\nVersion: 1.0\n", encoding="utf-8"
    )
    (dist / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    yield site
    sys.modules.pop("acme_tack", None)


async def test_an_installed_adapter_package_is_found_and_runs_the_bridge(
    acme_installed: Path, tmp_path: Path
) -> None:
    assert "acme" in available()
    settings = bridge_settings(tmp_path, "http://unused.invalid", adapter="acme")
    adapter = load_adapter(settings)
    assert type(adapter).__name__ == "AcmeAdapter"
    assert capabilities_of(adapter) == ["shifts"]

    db = await open_database(settings.db_path)
    try:  # a local fence: an adapter without geofences must leave it alone
        await replace_fences(db, settings.site, [Circle("lobby", 31.0, 121.0, 50.0)])
    finally:
        await db.close()
    keys = await insert_records(settings.db_path, ["a1", "a2"])
    import acme_tack  # type: ignore[import-not-found]

    async with Bridge(settings) as bridge:

        async def done() -> bool:
            return sorted(acme_tack.UPLOADED) == sorted(keys) and bridge.counters.shifts == 1

        await eventually(done, "records uploaded and shifts pulled through the acme adapter")
        assert bridge.counters.last_error is None
    assert {p.person_id for p in (await people(settings.db_path)).values()} == {"a1", "a2"}
    with sqlite3.connect(settings.db_path) as raw:
        assert raw.execute("SELECT name, source FROM geofences").fetchall() == [("lobby", "local")]
        assert raw.execute("SELECT shift_id, start_hhmm FROM shifts").fetchall() == [
            ("acme-day", "08:00")
        ]


def test_an_unknown_adapter_name_lists_the_installed_ones(acme_installed: Path) -> None:
    settings = bridge_settings(Path("/nonexistent"), "http://unused.invalid", adapter="acmee")
    with pytest.raises(ConfigError) as err:
        load_adapter(settings)
    assert "acmee" in err.value.message
    assert "acme, dingtalk, wecom" in err.value.message
