"""docs/protocol.md's reason table says what ``ReasonCode`` says, word for word."""

from __future__ import annotations

import re

import pytest

from devices.protocol import MEANINGS, ReasonCode
from tests.protocol.support import DOCS_PATH

_ROW = re.compile(r"^\|\s*`(?P<code>[a-z_]+)`\s*\|(?P<meaning>[^|]*)\|(?P<transient>[^|]*)\|")


def _reason_table() -> dict[str, tuple[str, str]]:
    text = DOCS_PATH.read_text(encoding="utf-8")
    section = text.split("\n## 7. Reason codes\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if match:
            assert match["code"] not in rows, f"{match['code']} is listed twice"
            rows[match["code"]] = (match["meaning"].strip(), match["transient"].strip())
    return rows


def test_every_reason_code_is_in_the_table_and_nothing_else() -> None:
    assert sorted(_reason_table()) == sorted(str(r) for r in ReasonCode)


@pytest.mark.parametrize("reason", list(ReasonCode), ids=str)
def test_reason_row_matches_the_code(reason: ReasonCode) -> None:
    meaning, transient = _reason_table()[str(reason)]
    assert meaning == MEANINGS[reason]
    assert transient == ("yes" if reason.transient else "no")
