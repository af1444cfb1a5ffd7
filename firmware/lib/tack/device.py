"""What both applications share: start-up, the main loop, the screen, the clock and the counters.

Start-up order matters for "nothing lost": the boot counter is bumped before the first connect
(the protocol's stale-will rule needs it), and the outbox is opened and repaired before any
input is read, so a punch taken in the first second after a power cut lands behind the ones
that survived it.
"""

import gc
import json
import os
import select
import time

try:
    from typing import Callable  # for type checkers only: MicroPython has no typing
except ImportError:
    pass

from tack import VERSION, catalog, why
from tack.display import BAND_PX, ROW_PX, SCREEN_H, Display, Font
from tack.link import Link
from tack.outbox import Outbox, OutboxFull


# --- the clock ---------------------------------------------------------------------------------
# Wall-clock time in Unix milliseconds, kept in step with the gateway.
#
# A terminal's RTC drifts and may start at zero after a power cut; a punch stamped with a wrong
# time is a wrong attendance record. The gateway sends ``cmd/time`` on every connect, and the
# clock keeps the offset between the gateway's time and the local one. Until the first sync the
# local RTC is used and ``synced`` is False (the screen says so). MicroPython ports whose epoch is
# 2000-01-01 are corrected to the Unix epoch here, once.

# Seconds between 1970-01-01 and the port's epoch (946684800 on ports that count from 2000).
_EPOCH_SHIFT_S = 0 if time.gmtime(0)[0] == 1970 else 946684800


def _local_ms():
    if hasattr(time, "time_ns"):
        return time.time_ns() // 1000000 + _EPOCH_SHIFT_S * 1000
    return (time.time() + _EPOCH_SHIFT_S) * 1000


class Clock:
    def __init__(self, tz_min=0):
        self.offset_ms = 0
        self.synced = False
        # The site's offset from UTC in minutes, and its next change (ms, minutes) or None:
        # the configured offset until the gateway's cmd/time says better (sitetime.py there).
        self.tz = tz_min
        self.tz_next = None

    def now_ms(self):
        return _local_ms() + self.offset_ms

    def sync(self, gateway_ms):
        """Adopt the gateway's time; returns the correction applied, in ms. (``tz`` and
        ``tz_next`` are set beside it by tack.timesync.)"""
        before = self.now_ms()
        self.offset_ms = gateway_ms - _local_ms()
        self.synced = True
        return gateway_ms - before

    def hhmm(self, ms=None):
        """``HH:MM`` of a Unix-ms time (now by default) at the site: with the offset of that
        moment, so a daylight-saving change takes effect when it comes, connected or not."""
        if ms is None:
            ms = self.now_ms()
        nxt = self.tz_next
        tz = nxt[1] if nxt is not None and ms >= nxt[0] else self.tz
        t = time.gmtime(ms // 1000 + tz * 60 - _EPOCH_SHIFT_S)
        return "%02d:%02d" % (t[3], t[4])


# --- counters that survive a reboot -------------------------------------------------------------
# Counters that must survive a reboot: the boot counter and the message sequence number.
#
# They live in a small JSON file replaced atomically (write a temporary file, then rename), so a
# power cut leaves either the old or the new counters, never a torn file. The sequence number is
# written before the message that carries it goes into the outbox, so a crash can skip a number
# (a gap the gateway can diagnose) but never reuse one.


class State:
    def __init__(self, path):
        self.path = path
        self.boot = 0
        self.seq = 0
        for path in (self.path, self.path + ".tmp"):
            try:
                with open(path) as f:
                    data = json.load(f)
                self.boot = int(data.get("boot", 0))
                self.seq = int(data.get("seq", 0))
                break
            except (OSError, ValueError, TypeError, AttributeError):
                continue

    def _save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write(json.dumps({"boot": self.boot, "seq": self.seq}))
        os.rename(tmp, self.path)

    def next_boot(self):
        """Count a start of the device; called once, before the first connect."""
        self.boot += 1
        self._save()
        return self.boot

    def next_seq(self):
        self.seq += 1
        self._save()
        return self.seq


class Device:
    """The loop and the screen; an application subclass defines what happens:

    - ``on_input(kind, value)``: a card, an employee number or a button (see tack.hal);
    - ``on_ack(ack, action)`` and ``on_command(name, payload)``: from the gateway, via the link;
    - ``tick(now_ms)``: every pass of the loop;
    - ``screen()``: the screen as a list of ``(row, text, options)``; options: big, invert,
      align. Drawn again only when its text changes;
    - ``say(text)``: a short message on screen for the person there (what went wrong).

    (Not defined here as empty methods: each would cost heap and both applications define all.
    The annotations below are for type checkers; MicroPython ignores them.)
    """

    on_input: "Callable[[str, str], None]"
    on_ack: "Callable[[dict, str], None]"
    on_command: "Callable[[str, bytes], None]"
    tick: "Callable[..., None]"
    screen: "Callable[[], list]"
    say: "Callable[[str], None]"

    # Must-read notices (tack.notices): ``notes`` is None, the usual case, or the module that
    # shows them (it draws the screen and takes the inputs first); the application puts a
    # cmd/notice's payload in ``notes_in`` for the main loop. Class attributes: a device with
    # no notice pays no slot for them.
    notes = None
    notes_in = None
    notes_wait = None  # ticks_ms before which the next step waits (a heap found short), or None
    notes_tries = 0

    def __init__(self, cfg, hal):
        # The settings the running device still reads are kept as attributes (named as their
        # keys, so each key costs no str of its own): the settings dict can then go after boot.
        self.device_id = cfg["device_id"]
        self.verdict_show_ms = cfg["verdict_show_ms"]
        self.hal = hal
        self.lang = cfg["lang"]
        self.data = cfg["data_dir"]
        # A band of the screen, not the whole of it: 1.2 KB instead of 4.7 KB (see render()).
        self.display = Display(height=BAND_PX, font=Font(cfg["font_path"]))
        try:
            os.mkdir(self.data)
        except OSError:
            pass
        self.clock = Clock(cfg["tz_offset_min"])
        self.state = State(self.data + "/state.json")
        self.boot = self.state.next_boot()
        outbox_max_records = cfg["outbox_max_records"]  # locals named as the keys: no str copies
        outbox_max_bytes = cfg["outbox_max_bytes"]
        self.outbox = Outbox(self.data + "/outbox.log", outbox_max_records, outbox_max_bytes)
        repair = self.outbox.open()
        hal.event("boot", {"boot": self.boot, "fw": VERSION, "outbox": repair})
        self.damaged = repair["damaged"]  # records lost to damage, for the screen
        if self.damaged or repair["truncated_bytes"]:
            hal.log(why("dv_repair", repair))
        self.link = Link(
            cfg, hal, self.clock, self.outbox, self.boot, VERSION, self.on_ack, self.on_command
        )
        self.running = True
        self._shown = None

    def t(self, key, *args):
        return catalog.text(self.lang, key, *args)

    # --- screen -------------------------------------------------------------------------------

    def render(self, force=False):
        rows = self.screen() if self.notes is None else self.notes.screen(self)
        lines = [r[1] for r in rows]
        if not force and lines == self._shown:
            return
        self._shown = lines
        # Drawn top to bottom a band at a time: a 16-px row, or both rows of a headline. Each
        # band goes to the HAL as soon as it is drawn (the panel's controller keeps the
        # picture), so the device needs a band's buffer, not the whole screen's.
        d = self.display
        row = 0
        while row * ROW_PX < SCREEN_H:
            d.clear()
            height = 1
            for r, text, opts in rows:
                if r == row:
                    big = opts.get("big", False)
                    d.line(0, text, opts.get("align", "left"), opts.get("invert", False), big)
                    height = 2 if big and (row + 2) * ROW_PX <= SCREEN_H else 1
            self.hal.band(d, row * ROW_PX, height * ROW_PX)
            row += height
        self.hal.show(d, lines)

    def status_line(self):
        parts = [self.t("online") if self.link.connected else self.t("offline")]
        n = len(self.outbox)
        if n:
            parts.append(self.t("waiting_count", n))
        if not self.clock.synced:
            parts.append(self.t("time_unset"))
        return " · ".join(parts)

    # --- main loop ----------------------------------------------------------------------------

    def _input(self, kind, value):
        """``on_input``, surviving a heap too full for it: the person is told their card or
        press was not taken and to try again (nothing was written: the outbox reserves its
        room first), and the device goes on instead of stopping at the door."""
        try:
            self.on_input(kind, value)
        except MemoryError:
            gc.collect()
            self.hal.log(why("dv_nomem", kind))
            self.say(self.t("not_saved_retry"))

    def run(self):
        # Heap figures for benchmarks: live bytes after a collection, at boot and at the
        # highest sample (every 100 passes; collecting that often also keeps the heap tidy).
        gc.collect()
        peak = gc.mem_alloc()
        self.hal.event("mem", {"heap_boot": peak, "heap_free": gc.mem_free()})
        passes = 0
        poller = select.poll()
        registered = []  # type: list
        while self.running:
            passes += 1
            if passes == 100:
                passes = 0
                gc.collect()
                peak = max(peak, gc.mem_alloc())
            fds = self.hal.fds() + self.link.fds()
            if fds != registered:
                for obj in registered:
                    try:
                        poller.unregister(obj)
                    except (OSError, KeyError, ValueError):
                        pass
                for obj in fds:
                    poller.register(obj, select.POLLIN)
                registered = fds
            ready = poller.poll(50) if fds else []
            if not fds:
                self.hal.sleep_ms(20)
            inputs_ready = not self.hal.fds()
            for entry in ready:
                if entry[0] in self.hal.fds():
                    inputs_ready = True
            if inputs_ready:
                for kind, value in self.hal.read_inputs():
                    if kind == "quit":
                        self.running = False
                    elif self.notes is None or not self.notes.on_input(self, kind, value):
                        self._input(kind, value)
            self.link.step()
            if type(self.notes_in) is bytes and not self.link.connected:
                # A cmd/notice not read yet when the session dropped: let it go before the
                # reconnect needs the heap (a 64 KiB terminal has none to spare). The list
                # is retained: the broker sends it again on the reconnect's subscribe.
                self.notes_in = None
            if (
                self.notes_in is not None
                and not getattr(self, "mode", 0)
                and (self.notes_wait is None or time.ticks_diff(time.ticks_ms(), self.notes_wait) >= 0)
            ):
                # A cmd/notice came (or a notice was put aside, or acknowledged): handled here
                # in the main loop, not in the MQTT client's callback, once the screen is idle
                # (a terminal's mode 0), by code loaded only for it.
                from tack import notices

                notices.step(self)  # and unloads itself
                # ...but this frame lives as long as the device: a local left bound would keep
                # the module (about 1.6 KB) on the heap after unload, and a 64 KiB terminal
                # then has too little left to reconnect once its session drops.
                del notices
            self.tick(time.ticks_ms())
            try:
                self.render()
            except MemoryError:
                # A screen that finds no room is drawn whole on a later pass; punches go on.
                self._shown = None
                gc.collect()
        self.link.close()
        self.outbox.close()
        self.hal.event("stopped", {"outbox": len(self.outbox), "heap_peak": peak})
