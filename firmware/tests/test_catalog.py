"""The text catalogs, run inside MicroPython (glyph coverage is checked from CPython)."""

from tack import catalog


def _keys(lang):
    keys = []
    with open(catalog.__file__.rsplit("/", 1)[0] + "/lang_%s.txt" % lang) as f:
        for line in f:
            line = line.rstrip("\n")
            if line and not line.startswith("#"):
                assert "=" in line, "%s: line %r is not key=text" % (lang, line)
                keys.append(line.split("=", 1)[0])
    return keys


def test_languages_have_the_same_keys():
    assert catalog.LANGS == ("en", "zh")
    en = _keys("en")
    zh = _keys("zh")
    only_en = [k for k in en if k not in zh]
    only_zh = [k for k in zh if k not in en]
    assert not only_en and not only_zh, "only in EN: %r, only in ZH: %r" % (only_en, only_zh)
    assert len(set(en)) == len(en), "a key appears twice in EN"


def test_formatting():
    assert catalog.text("en", "saved_waiting", 3) == "Saved, 3 waiting"
    assert catalog.text("zh", "saved_waiting", 3) == "已保存，3条待发送"
    assert catalog.text("en", "free_until", "10:30") == "Free until 10:30"
    assert catalog.text("zh", "ready") == "请刷卡或输入工号"
    assert catalog.text("en", "ends_in", 5) == "Ends in 5 min", "the last line is read whole"


def test_a_key_is_not_found_inside_another():
    # "now" is a key and "no_meetings" starts with "no": only a whole key at a line start counts.
    assert catalog.text("en", "now") == "Now"
    assert catalog.text("en", "no") == "no"
    assert catalog.text("en", "meetings") == "meetings"


def test_only_a_few_texts_stay_in_memory():
    for key in _keys("en"):
        assert catalog.text("en", key) != key, key
    assert len(catalog._cache) <= catalog._CACHED, len(catalog._cache)
    assert catalog.text("en", "ends_in", 5) == "Ends in 5 min", "read from the file when not cached"
    assert catalog.text("zh", "ready") == "请刷卡或输入工号", "another language starts afresh"
    assert catalog.text("en", "ready") == "Tap card or enter ID"


def test_unknown_key_language_or_arguments_never_raise():
    assert catalog.text("zh", "no_such_key") == "no_such_key"
    assert catalog.text("fr", "ready") == "Tap card or enter ID", "unknown language is English"
    assert catalog.text("en", "saved_waiting", "x") == "Saved, %d waiting"
    assert catalog.text("en", "saved_waiting", 1, 2) == "Saved, %d waiting"
    assert catalog.text("en", "ready", 5) == "Tap card or enter ID"


def test_every_reason_code_has_a_text():
    codes = (
        "ok duplicate malformed_json not_an_object missing_field wrong_type invalid_value"
        " unsupported_version payload_too_large bad_topic topic_mismatch device_mismatch"
        " unknown_kind unknown_device device_revoked unknown_credential person_inactive busy"
        " store_unavailable internal_error"
    ).split()
    for code in codes:
        for lang in catalog.LANGS:
            key = "reason_" + code
            assert catalog.text(lang, key) != key, "%s has no %s text" % (lang, key)
