"""The run as it goes, on stderr: sessions placed, under way, ok, refused and failed, and the live
p50 of time to first audio over every session placed, those in flight included: one still waiting
for its first audio counts as its time so far (a lower bound, so the p50 is marked `≥` while any
does), else a slow run shows the few fast sessions that finished. A terminal gets one line
rewritten each second; a log (not a terminal) a line every ten seconds (voicefleet/status_line.py)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TextIO

from voicefleet.loadtest.record import DROPPED, FAILED, OK, REFUSED, SessionRecord
from voicefleet.loadtest.summary import percentile, values_of
from voicefleet.status_line import StatusLine


class Progress:
    def __init__(self, planned: int, duration: float, stream: TextIO | None = None) -> None:
        self.planned, self.duration = planned, duration
        self.status = StatusLine(stream)
        self.began = time.monotonic()

    def line(self, done: Sequence[SessionRecord], in_flight: Sequence[tuple[SessionRecord, float]]) -> str:
        """`done`: the sessions that ended (their outcome final); `in_flight`: those under way, each with
        the seconds since its POST /start was sent."""
        elapsed = time.monotonic() - self.began
        everyone = [*done, *(record for record, _ in in_flight)]
        placed = sum(r.outcome != DROPPED for r in everyone)
        counts = {o: sum(r.outcome == o for r in done) for o in (OK, DROPPED)}
        # A refusal or a failure is final the moment it happens, in flight or not.
        counts |= {o: sum(r.outcome == o for r in everyone) for o in (REFUSED, FAILED)}
        figures = [f"{_clock(elapsed)}/{_clock(self.duration)}", f"placed {placed}/{self.planned}",
                   f"in flight {len(in_flight)}", f"ok {counts[OK]}", f"refused {counts[REFUSED]}",
                   f"failed {counts[FAILED]}"]
        if counts[DROPPED]:
            figures.append(f"dropped {counts[DROPPED]}")
        waiting = [seconds for record, seconds in in_flight if record.outcome == OK and record.first_audio is None]
        first_audio = values_of(everyone, "first_audio") + waiting
        if first_audio:
            bound = "≥ " if waiting else ""
            figures.append(f"first audio p50 {bound}{percentile(first_audio, 50):.2f} s ({len(waiting)} waiting)")
        turns = values_of(everyone, "turn")
        if turns:
            figures.append(f"turn p50 {percentile(turns, 50):.2f} s")
        return "loadtest " + "  ".join(figures)

    def show(self, done: Sequence[SessionRecord], in_flight: Sequence[tuple[SessionRecord, float]], *,
             final: bool = False) -> None:
        if final or self.status.due():
            self.status.show(self.line(done, in_flight), final=final)


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
