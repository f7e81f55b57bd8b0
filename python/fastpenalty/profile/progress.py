"""A tiny progress bar: drawn on stderr only when it is a terminal and the work passes 1 s."""

from __future__ import annotations

import sys
import time


class Progress:
    def __init__(self, label: str, total: float, stream=None, delay: float = 1.0):
        self.label, self.total = label, max(float(total), 1e-12)
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(getattr(self.stream, "isatty", lambda: False)())
        self.delay, self.done = delay, 0.0
        self.start = self.last_draw = time.perf_counter()
        self.drawn = False

    def advance(self, amount: float = 1.0) -> None:
        self.done += amount
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self.start >= self.delay and now - self.last_draw >= 0.1:
            self.last_draw = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0)
        width = 30
        bar = "#" * int(frac * width) + "-" * (width - int(frac * width))
        self.stream.write(f"\r{self.label} [{bar}] {frac:6.1%} {now - self.start:5.1f}s")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\r" + " " * (len(self.label) + 52) + "\r")
            self.stream.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
