"""A download progress display on stderr, without a dependency.

On a terminal it redraws one line (`\\r`) at most ten times a second; otherwise (logs, CI, a test
capturing stderr) it prints a line every 10 %, so the output stays readable and short.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 24


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class ProgressBar:
    """Callable as a `transfer.Progress`: `bar(done, total)`; `close()` ends the line."""

    def __init__(self, label: str, stream: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.start = time.monotonic()
        self.first: int | None = None  # bytes already there when this run started (a resume)
        self.last_draw = 0.0
        self.last_decile = -1
        self.done = 0
        self.total: int | None = None

    def __call__(self, done: int, total: int | None) -> None:
        if self.first is None or done < self.done:
            self.first, self.start = done, time.monotonic()
            if done:
                self.stream.write(f"{self.label}: resuming at {human(done)}\n")
        self.done, self.total = done, total
        now = time.monotonic()
        if self.tty:
            if now - self.last_draw >= 0.1 or done == total:
                self.last_draw = now
                self.stream.write("\r" + self.render(now))
                self.stream.flush()
            return
        decile = done * 10 // total if total else -1
        if decile > self.last_decile:
            self.last_decile = decile
            self.stream.write(self.render(now) + "\n")
            self.stream.flush()

    def render(self, now: float) -> str:
        elapsed = max(now - self.start, 1e-6)
        rate = f"{human((self.done - (self.first or 0)) / elapsed)}/s"
        if not self.total:
            return f"{self.label} {human(self.done)} {rate}"
        fraction = min(self.done / self.total, 1.0)
        filled = int(fraction * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        return f"{self.label} [{bar}] {fraction:4.0%} {human(self.done)}/{human(self.total)} {rate}"

    def close(self) -> None:
        if self.tty and self.first is not None:
            self.stream.write("\n")
            self.stream.flush()
