"""A console progress bar that reports examples per second.

On a terminal it redraws one line; otherwise (logs, CI) it prints a line about every
10% of the work so that logs stay short.
"""

from __future__ import annotations

import sys
import time


class ProgressBar:
    def __init__(self, label: str, total_steps: int | None, stream=None, enabled: bool = True):
        self.label = label
        self.total = total_steps
        self.stream = stream if stream is not None else sys.stdout
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self.steps = 0
        self.examples = 0
        self._last_draw = 0.0
        self._next_report = 0.1

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    @property
    def examples_per_second(self) -> float:
        return self.examples / self.elapsed if self.elapsed > 0 else 0.0

    def _line(self, values: dict) -> str:
        if self.total:
            width = 24
            filled = int(width * min(self.steps / self.total, 1.0))
            bar = f"[{'=' * filled}{'.' * (width - filled)}] {self.steps}/{self.total}"
        else:
            bar = f"{self.steps} steps"
        extra = "".join(f" {k}={v:.4f}" for k, v in values.items())
        return (
            f"{self.label} {bar} {self.elapsed:.0f}s "
            f"{self.examples_per_second:.0f} examples/s{extra}"
        )

    def update(self, examples: int, **values) -> None:
        self.steps += 1
        self.examples += examples
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.tty:
            if now - self._last_draw > 0.2:
                self.stream.write("\r" + self._line(values))
                self.stream.flush()
                self._last_draw = now
        elif self.total and self.steps / self.total >= self._next_report:
            self.stream.write(self._line(values) + "\n")
            self.stream.flush()
            while self._next_report <= self.steps / self.total:
                self._next_report += 0.1

    def close(self, **values) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r" + self._line(values) + "\n")
        elif not self.total or self.steps < self.total:
            # A short or interrupted loop: the periodic report may not have fired.
            self.stream.write(self._line(values) + "\n")
        self.stream.flush()
