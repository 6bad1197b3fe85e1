"""Progress lines on stderr while a pipeline command runs (``--quiet`` turns them off).

A pipeline's ``main`` runs its work inside ``report(name)``; the code that reads and writes
names what it is doing with ``phase`` and counts what it has done with ``add`` (both do nothing
outside a report, e.g. when a test or a benchmark calls ``build``). One line is printed
every ``REPORT_INTERVAL_S`` seconds, e.g.

    taobao: reading UserBehavior.csv: 12,582,912 rows (1,048,576 rows/s), 12 s elapsed

by ``add`` when a line is due, else by a background thread, so that a long phase with no
counter still shows that the run is alive.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time

REPORT_INTERVAL_S = 15.0
_current: _Reporter | None = None


def duration(seconds: float) -> str:
    """``42 s`` or ``3 min 05 s``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"


class _Reporter:
    """The current phase and its count, printed every ``interval`` s."""

    def __init__(self, name: str, interval: float):
        self.name = name
        self.interval = interval
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._phase, self._unit, self._count, self._since = "starting", None, 0, self._started
        self._printed = self._started  # when the last line was printed
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-progress",
                                        daemon=True)

    def set_phase(self, text: str, unit: str | None):
        with self._lock:
            self._phase, self._unit, self._count = text, unit, 0
            self._since = time.monotonic()

    def add(self, n: int):
        with self._lock:
            self._count += int(n)
        self.print_if_due()

    def print_if_due(self):
        """One line (a single write, whichever thread prints) when ``interval`` s passed since
        the last."""
        with self._lock:
            now = time.monotonic()
            if now - self._printed < self.interval:
                return
            self._printed = now
            sys.stderr.write(self._line(now) + "\n")
            sys.stderr.flush()

    def _seconds_to_next_line(self) -> float:
        with self._lock:
            return max(self._printed + self.interval - time.monotonic(), 0.01)

    def _line(self, now: float) -> str:
        text, unit, count, since = self._phase, self._unit, self._count, self._since
        elapsed = f"{duration(now - self._started)} elapsed"
        if unit is None:
            return f"{self.name}: {text}, {elapsed}"
        rate = count / max(now - since, 1e-6)
        return f"{self.name}: {text}: {count:,} {unit} ({rate:,.0f} {unit}/s), {elapsed}"

    def _run(self):
        while not self._stop.wait(self._seconds_to_next_line()):
            self.print_if_due()

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join()


@contextlib.contextmanager
def report(name: str, quiet: bool = False):
    """Progress lines of the pipeline ``name`` on stderr while the block runs (none when
    ``quiet``); the thread has stopped when the block ends, before any error is printed."""
    global _current
    if quiet:
        yield
        return
    reporter = _Reporter(name, REPORT_INTERVAL_S)
    _current = reporter
    reporter.start()
    try:
        yield
    finally:
        reporter.stop()
        _current = None


def phase(text: str, unit: str | None = None):
    """What the pipeline does now; ``unit`` names what ``add`` counts (None: no count)."""
    if _current is not None:
        _current.set_phase(text, unit)


def add(n: int):
    """``n`` more rows (or the phase's unit) done."""
    if _current is not None:
        _current.add(n)
