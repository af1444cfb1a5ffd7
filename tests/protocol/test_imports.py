"""The protocol package stands alone: device tools and firmware tests import it without the
gateway's stack (as aioesphomeapi's test_lazy_imports does)."""

from __future__ import annotations

import subprocess
import sys

from tests.protocol.support import PROTOCOL_DIR

_HEAVY = [
    "gateway",
    "cloud_bridge",
    "simulators",
    "paho",
    "fastapi",
    "httpx",
    "aiosqlite",
    "pydantic",
    "jsonschema",
    "bleak",
    "serial",
]


def test_protocol_imports_alone() -> None:
    code = (
        "import devices.protocol, sys; "
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({_HEAVY!r})); "
        "assert not loaded, loaded"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROTOCOL_DIR.parents[1],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
