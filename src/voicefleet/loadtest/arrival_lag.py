"""How late the bot's audio reached the caller, against the bot's own audio clock: each frame's RTP
timestamp says when its bot host's output sent it (Pipecat's WebRTC output paces its audio, silence
included, at real time), so its arrival less that instant is the way from the bot's output to the
caller's recording (network, the caller's socket, decoder and loop) plus a constant. The least of
it so far is the path keeping time; what a frame has more is how far that path fell behind real time
(a caller short of CPU reading its socket late, a bot host whose output ran late). A bot slow by
design sends silence on time while it thinks: its lateness is not in this figure."""

from __future__ import annotations

import bisect
import math
from typing import Protocol


class Arrivals(Protocol):
    times: list[float]  # monotonic arrival of each frame
    late: list[float]  # ArrivalLag's figure for each


class ArrivalLag:
    def __init__(self) -> None:
        self._least = math.inf  # the least arrival-less-clock seen: the path keeping time

    def note(self, arrived: float, clock: float | None) -> float:
        """Seconds the frame sent at `clock` (the bot's audio clock, in seconds) and arrived at `arrived`
        (monotonic) came later than the path's best so far; 0 for a frame without a clock."""
        if clock is None:
            return 0.0
        offset = arrived - clock
        self._least = min(self._least, offset)
        return offset - self._least


def late_at(recording: Arrivals, since: float, at: float | None) -> float | None:
    """How late the frame that arrived at `at` (an answer's first audio) came (`recording.late`); with
    no such instant, the most any frame since `since` came late (an answer not heard: what came in
    meanwhile was that late, and so were its words, on the same connection). None: no frame."""
    times, late = recording.times, recording.late
    first = bisect.bisect_left(times, since)
    if at is not None:
        index = bisect.bisect_left(times, at)
        return late[index] if index < len(late) else None
    return max(late[first:], default=None)
