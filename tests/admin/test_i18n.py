"""Both catalogs say everything the UI says: the same keys, and every key a page uses."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.admin import ui
from gateway.admin.i18n import LANGUAGES, Translator, catalog, choose

ADMIN = Path(ui.__file__).parent
USED = re.compile(r"""\bt\(\s*['"]([a-z_.]*[a-z_])['"]\s*[,)]""")


def _used_keys() -> set[str]:
    keys: set[str] = set()
    for path in [*ADMIN.glob("templates/*.html"), ADMIN / "ui.py"]:
        keys |= set(USED.findall(path.read_text(encoding="utf-8")))
    # Keys the templates build from a name: nav.<section>, state.<state>, prefs.<theme>.
    keys |= {f"nav.{key}" for _, key, _ in ui.NAV}
    keys |= {f"state.{s}" for s in ("online", "offline", "revoked")}
    keys |= {f"prefs.{theme}" for theme in ui.THEMES}
    keys |= {"dur.s", "dur.min", "dur.h"}
    return keys


def test_catalogs_have_the_same_keys_and_every_used_one() -> None:
    en, zh = set(catalog("en")), set(catalog("zh"))
    assert en == zh, f"only in en: {en - zh}; only in zh: {zh - en}"
    assert _used_keys() - en == set()


def test_placeholders_match_between_languages() -> None:
    field = re.compile(r"\{(\w+)\}")
    for key, text in catalog("en").items():
        assert set(field.findall(text)) == set(field.findall(catalog("zh")[key])), key


def test_language_from_cookie_then_accept_language() -> None:
    assert choose(None, "zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert choose(None, "en-US,en;q=0.9,zh;q=0.5") == "en"
    assert choose("en", "zh-CN") == "en"
    assert choose(None, "fr-FR") == "en"
    assert set(LANGUAGES) == {"en", "zh"}


def test_durations_read_as_people_say_them() -> None:
    t = Translator("en")
    assert [t.duration(s) for s in (40, 720, 6694)] == ["40 s", "12 min", "1 h 51 min"]
    assert Translator("zh").duration(6694) == "1 小时 51 分钟"
