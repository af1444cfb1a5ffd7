"""Tack device firmware: the core shared by the clock-in terminal and the meeting-room panel."""

VERSION = "0.2.0"


def unload(name):
    """Forget module `name` (e.g. "tack.config") so the heap its code holds can be collected:
    for code that runs once, at start-up. The caller drops its own references to it."""
    import sys

    sys.modules.pop(name, None)
    package, _, attr = name.rpartition(".")
    if package in sys.modules:
        try:
            delattr(sys.modules[package], attr)
        except (AttributeError, KeyError):  # MicroPython raises KeyError for a module
            pass


def why(key, *args):
    """Message `key` of tack/messages.txt, formatted with `args`: an error's or a log line's text.

    The texts live in that file, read from flash only when a message is raised or logged,
    because a string in the code stays on the heap for as long as its module is loaded, and
    the firmware's messages would take a sixth of a 64 KiB heap. Never raises: without the
    file or the key, or with arguments that do not fit, the key and the arguments still say
    what happened.
    """
    try:
        with open(__file__.rsplit("/", 1)[0] + "/messages.txt") as f:
            for line in f:
                if line.startswith(key) and line[len(key) : len(key) + 1] == " ":
                    text = line[len(key) + 1 :].rstrip("\n")
                    return text % args if args else text
    except Exception:  # no file, no memory, or a format the arguments do not fit
        pass
    return "%s %r" % (key, args)
