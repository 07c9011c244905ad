"""A dependency-free progress line: count, rate, ETA and any live metrics; redraws on a terminal,
prints a line every few seconds elsewhere (logs, CI)."""
from __future__ import annotations

import sys
import time
from typing import TextIO


def fmt_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    def __init__(self, total: int, desc: str = "", unit: str = "it", stream: TextIO | None = None,
                 enabled: bool = True, min_interval: float = 0.2, log_interval: float = 10.0) -> None:
        self.total, self.desc, self.unit = max(int(total), 1), desc, unit
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = min_interval if self.tty else log_interval
        self.start = self.last_draw = time.perf_counter()
        self.start_count = 0
        self.count, self.postfix, self._drawn = 0, "", False

    def reset_clock(self, count: int) -> None:
        """Measure rate from here (e.g. after a resume or a compile warm-up)."""
        self.start, self.start_count = time.perf_counter(), count

    def update(self, count: int, postfix: str = "") -> None:
        self.count, self.postfix = count, postfix or self.postfix
        now = time.perf_counter()
        if self.enabled and (now - self.last_draw >= self.interval or count >= self.total):
            self.last_draw = now
            self._draw(now)

    def line(self, now: float | None = None) -> str:
        now = now or time.perf_counter()
        elapsed = now - self.start
        done = self.count - self.start_count
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else 0.0
        pct = 100.0 * self.count / self.total
        return (f"{self.desc} {pct:5.1f}% {self.count}/{self.total} [{fmt_time(elapsed)}<{fmt_time(eta)}, "
                f"{rate:,.1f} {self.unit}/s]" + (f" {self.postfix}" if self.postfix else ""))

    def _draw(self, now: float) -> None:
        text = self.line(now)
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self._drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
