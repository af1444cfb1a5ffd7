"""English and Simplified Chinese for the web UI: one JSON catalog per language.

The language is the ``tack_lang`` cookie when set (the switch in the page header), else the
best match of the browser's Accept-Language, else English. A test keeps both catalogs with the
same keys and every key a template uses present.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

LANGUAGES = ("en", "zh")
DEFAULT = "en"
_DIR = Path(__file__).with_name("i18n")


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def choose(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return str(cookie)
    best, best_q = DEFAULT, -1.0
    for part in (accept_language or "").split(","):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and q > best_q:
            best, best_q = primary, q
    return best


class Translator:
    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._catalog = catalog(lang)
        self._fallback = catalog(DEFAULT)

    def __call__(self, key: str, **values: object) -> str:
        text = self._catalog.get(key) or self._fallback.get(key) or key
        return text.format(**values) if values else text

    def duration(self, seconds: float) -> str:
        """A wait or a lag as people say it: 40 s, 12 min, 1 h 52 min."""
        s = int(seconds)
        if s < 90:
            return self("dur.s", n=s)
        if s < 90 * 60:
            return self("dur.min", n=round(s / 60))
        return self("dur.h", h=s // 3600, m=s % 3600 // 60)
