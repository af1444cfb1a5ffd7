"""Runs the firmware's unit tests inside MicroPython: the real interpreter, not CPython.

    micropython firmware/tests/runner.py test_outbox [test_name ...]

Each ``test_*`` function of the module runs in turn; one line per test goes to stdout
(``PASS name`` or ``FAIL name: error``), the traceback of a failure to stderr, and the exit
status is 1 when any test failed. A test that takes a ``tmp`` argument gets a fresh directory
under ``$TACK_TMP`` (the pytest driver passes its own temporary directory).
"""

import os
import sys

_counter = [0]


def _tmpdir(name):
    base = os.getenv("TACK_TMP") or "/tmp"
    _counter[0] += 1
    path = "%s/%s-%d" % (base, name, _counter[0])
    try:
        os.mkdir(path)
    except OSError:
        pass
    return path


def main(argv):
    if len(argv) < 2:
        print("usage: runner.py MODULE [TEST ...]")
        return 2
    module = __import__(argv[1])
    wanted = argv[2:]
    names = sorted(n for n in dir(module) if n.startswith("test_"))
    failed = 0
    for name in names:
        if wanted and name not in wanted:
            continue
        fn = getattr(module, name)
        try:
            _call(fn, name)
            print("PASS", name)
        except Exception as exc:  # noqa: BLE001 - report every failure and go on
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(exc).__name__, exc))
            sys.print_exception(exc, sys.stderr)
    return 1 if failed else 0


def _call(fn, name):
    # MicroPython functions carry no signature to inspect: a test that wants a directory is
    # told so by the interpreter ("takes 1 positional arguments but 0 were given").
    try:
        fn()
    except TypeError as exc:
        if "positional arguments but 0 were given" not in str(exc):
            raise
        fn(_tmpdir(name))


sys.exit(main(sys.argv))
