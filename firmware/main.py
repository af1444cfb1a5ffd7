"""Start the device: ``micropython main.py [config.json]`` on the Unix port, ``main.py`` on a board.

The config names the application (``clock_terminal`` or ``meeting_panel``); a config error is
printed as ``CONFIG ERROR: ...`` (the serial console on a board) naming the setting, and the
device stops with status 2 rather than run with a setting it does not understand.

The config checker and the HAL chooser run once: they are imported here and unloaded before
the main loop starts, so their bytecode goes back to the heap the loop runs in.
"""

import gc
import sys

from tack import unload

# While the device runs, a collection every 4 KB allocated: the loop's short-lived strings
# are then reclaimed before they can push a long-lived allocation up the heap.
_RUN_THRESHOLD = 1024


def main(argv):
    # Loading a module leaves a small hole per function once its loader's records are
    # garbage; collecting every KB while the modules load lets the next ones fill those holes
    # instead of scattering them over the heap (3 KB of holes after boot instead of 10 KB).
    gc.threshold(256)
    path = argv[1] if len(argv) > 1 else "config.json"
    from tack import config

    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        print("CONFIG ERROR: %s" % exc)
        return 2
    from tack import hal

    device_hal = hal.make(cfg)
    del config, hal
    unload("tack.config")
    unload("tack.hal")
    gc.collect()
    app = __import__(cfg["app"] + ".main", None, None, ["start"])
    device = app.start(cfg, device_hal)
    del app, cfg  # what the device still needs of its settings, it keeps
    gc.threshold(_RUN_THRESHOLD)
    device.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
