"""The run as it goes, on stderr: sessions placed, under way, done, refused and failed, and the live
p50 of time to first audio and of turn latency. A terminal gets one line rewritten each second;
a log (not a terminal) a line every ten seconds."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

from cli.loadtest.record import DROPPED, FAILED, OK, REFUSED, SessionRecord
from cli.loadtest.summary import percentile, values_of

TERMINAL_EVERY = 1.0
LOG_EVERY = 10.0


class Progress:
    def __init__(self, planned: int, duration: float, stream: TextIO | None = None) -> None:
        self.planned, self.duration = planned, duration
        self.stream = stream or sys.stderr  # at run time: whatever stderr is then
        self.terminal = self.stream.isatty()
        self.began = time.monotonic()
        self._last = -LOG_EVERY

    def line(self, done: Sequence[SessionRecord], placed: int, active: int) -> str:
        """`done`: the sessions that ended (their outcome final); `placed` counts those under way too."""
        elapsed = time.monotonic() - self.began
        counts = {o: sum(r.outcome == o for r in done) for o in (OK, REFUSED, FAILED, DROPPED)}
        figures = [f"{_clock(elapsed)}/{_clock(self.duration)}", f"placed {placed}/{self.planned}",
                   f"active {active}", f"ok {counts[OK]}", f"refused {counts[REFUSED]}", f"failed {counts[FAILED]}"]
        if counts[DROPPED]:
            figures.append(f"dropped {counts[DROPPED]}")
        for measurement, label in (("first_audio", "first audio"), ("turn", "turn")):
            values = values_of(done, measurement)
            if values:
                figures.append(f"{label} p50 {percentile(values, 50):.2f} s")
        return "loadtest " + "  ".join(figures)

    def show(self, done: Sequence[SessionRecord], placed: int, active: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last < (TERMINAL_EVERY if self.terminal else LOG_EVERY):
            return
        self._last = now
        text = self.line(done, placed, active)
        if self.terminal:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
