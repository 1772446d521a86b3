"""Two sides of a call laid on one wall clock: caller left, bot right, silence where a side is silent.

Each side's audio is placed where it began (`start`, seconds since the recording began: the
recorder says when, per side), never before the end of what that side already has: a transport that sends faster
than real time (a TTS burst, a video avatar's) queues its audio one piece after another instead of
piling it up, and is heard in the recording as the caller heard it. A gap longer than
`jitter_seconds` is a silence and is kept as one; shorter ones are the network's jitter and are
closed up, so a late packet never shifts the rest of the call.

`take_until(t)` hands out the stereo PCM up to `t` once, whatever each side has (a side with
nothing is silent there): the recording's length is the call's, never the shorter side's, which is
how a silent caller truncated both tracks in Pipecat's AudioBufferProcessor (pipecat#1256). What a side holds
ahead of the clock is bounded (`max_ahead_seconds`); past it, `add` refuses and the recording is
degraded.
"""

from __future__ import annotations

from collections import deque

import numpy as np

SIDES = 2  # 0: the caller (left), 1: the bot (right)


class _Side:
    """One side's audio from the clock's last take on, as the chunks it came in (no copying per frame)."""

    def __init__(self) -> None:
        self.chunks: deque[np.ndarray] = deque()
        self.held = 0  # samples

    def append(self, samples: np.ndarray) -> None:
        if len(samples):
            self.chunks.append(samples)
            self.held += len(samples)

    def take_into(self, out: np.ndarray) -> None:
        """Fills `out` from the front (what is missing stays as it is: silence)."""
        filled = 0
        while filled < len(out) and self.chunks:
            chunk = self.chunks[0]
            taken = min(len(chunk), len(out) - filled)
            out[filled:filled + taken] = chunk[:taken]
            filled += taken
            if taken == len(chunk):
                self.chunks.popleft()
            else:
                self.chunks[0] = chunk[taken:]
        self.held -= filled


class TwoTrackClock:
    def __init__(self, sample_rate: int, *, jitter_seconds: float = 0.06, max_ahead_seconds: float = 120.0) -> None:
        self.sample_rate = sample_rate
        self._jitter = round(jitter_seconds * sample_rate)
        self._max_ahead = round(max_ahead_seconds * sample_rate)
        self.emitted = 0  # samples handed out, per side
        self._sides = [_Side() for _ in range(SIDES)]

    def add(self, side: int, samples: np.ndarray, start: float) -> bool:
        """Places mono int16 `samples` of `side` that began at `start` seconds; False when refused
        (that side is too far ahead of the clock)."""
        held = self._sides[side]
        cursor = self.emitted + held.held  # where this side's audio ends so far
        begins = round(start * self.sample_rate)
        gap = begins - cursor if begins - cursor > self._jitter else 0
        if held.held + gap + len(samples) > self._max_ahead:
            return False
        if gap:
            held.append(np.zeros(gap, dtype=np.int16))
        held.append(samples)
        return True

    def take_until(self, t: float) -> bytes:
        """Interleaved stereo int16 PCM (little-endian) from the last take up to `t` seconds."""
        target = round(t * self.sample_rate)
        count = target - self.emitted
        if count <= 0:
            return b""
        stereo = np.zeros((count, SIDES), dtype="<i2")
        for index, side in enumerate(self._sides):
            channel = np.zeros(count, dtype=np.int16)
            side.take_into(channel)
            stereo[:, index] = channel
        self.emitted = target
        return stereo.tobytes()

    def ahead(self, side: int) -> float:
        """Seconds of `side`'s audio held beyond what was handed out."""
        return self._sides[side].held / self.sample_rate
