"""What the terminal and the panel say, in the language the device is configured for.

Each language is a text file beside this module, ``tack/lang_<lang>.txt``: one ``key=text``
line per text, ``#`` comments and blank lines skipped. The file stays on flash; a text is
read from it when first asked for and kept, up to ``_CACHED`` of them (when full, the cache
starts again, so the texts a screen shows every second are soon back in it), so the dozens
of rarely shown texts, such as one per protocol reason code, take no heap. A CPython test checks that every language has the same
keys and a ``reason_*`` text per protocol reason code, and that every text renders with the
device font (firmware/tools/build_font.py reads the same files to choose its glyphs).

Placeholders are "%" formatting (%d, %s); `text()` never raises, because a wrong catalog
entry must not take a door terminal down.
"""

LANGS = ("en", "zh")
_CACHED = 8

_lang = None
_cache = {}  # type: dict[str, str]  # key -> template, of _lang


def _read(lang, key):
    """The template of `key` from the language's file, or None."""
    path = __file__.rsplit("/", 1)[0] + "/lang_%s.txt" % lang
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key) and line[len(key) : len(key) + 1] == "=":
                    return line[len(key) + 1 :].rstrip("\n")
    except OSError:
        pass
    return None


def text(lang, key, *args):
    """The string for `key` in `lang`, formatted with `args`.

    An unknown language reads as English; an unknown key comes back as the key itself, and
    arguments that do not fit the template leave the template unformatted: the screen shows
    something a technician can search for rather than the terminal stopping.
    """
    global _lang
    if lang != _lang:
        _cache.clear()
        _lang = lang
    template = _cache.get(key)
    if template is None:
        template = _read(lang if lang == "en" or lang == "zh" else "en", key)
        if template is None:
            return key
        if len(_cache) >= _CACHED:
            _cache.clear()
        _cache[key] = template
    if not args:
        return template
    try:
        return template % args
    except (TypeError, ValueError):
        return template
