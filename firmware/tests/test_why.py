"""tack.why and tack.unload: the firmware's messages, read from tack/messages.txt when one is
needed, and modules dropped after their one-off work."""

from tack import why


def test_a_message_is_read_and_formatted():
    assert why("mq_rc4") == "bad user name or password", why("mq_rc4")
    assert why("ob_dup", "m-1") == "msg_id 'm-1' is already in the outbox", why("ob_dup", "m-1")
    assert why("mq_refused", "h", 1883, "x", 5) == "mqtt: h:1883 refused the connection: x (CONNACK 5)"


def test_a_key_is_matched_whole():
    # "mq_rc" is a key and a prefix of "mq_rc1".."mq_rc5".
    assert why("mq_rc") == "unknown code", why("mq_rc")
    assert why("mq_r") == "mq_r ()", why("mq_r")


def test_a_missing_key_or_wrong_arguments_never_raise():
    assert why("no_such", 1, "a") == "no_such (1, 'a')", why("no_such", 1, "a")
    assert why("ob_dup") == "msg_id %r is already in the outbox", "no arguments: the text as it is"
    assert why("ob_full", 5) == "ob_full (5,)", "a missing argument gives the key, not a TypeError"
    assert why("mq_rc4", 7) == "mq_rc4 (7,)", "an extra argument gives the key too"


def test_unload_forgets_a_module_so_the_next_import_loads_it_again():
    import sys

    from tack import unload

    from tack import layout

    first = layout
    unload("tack.layout")
    assert "tack.layout" not in sys.modules, "still in sys.modules"
    from tack import layout

    assert layout is not first, "the import did not load it again"
    unload("tack.layout")
    unload("tack.layout")  # twice, and a module never loaded: no error
    unload("tack.no_such_module")
