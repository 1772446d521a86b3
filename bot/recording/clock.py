"""Two sides of a call laid on the call's own clock: caller left, bot right, silence where a side is silent.

Positions are samples from the call's start; `origin` is the `time.monotonic()` of position 0.
The caller's audio is a continuous stream (a carrier sends 20 ms every 20 ms, silence included):
it is laid end to end, and no caller sample is placed later than it arrived. Audio handed over
late and at once (a phone call's first seconds, held by the dispatcher while the bot started; a
network stall's backlog) would run past its own arrival: the silence laid before it is shortened,
and when none is left the call began earlier than its first frame arrived, so `origin` moves back
and the bot's audio not yet handed out moves with it. The bot's audio is placed where it was played,
never before the end of what it already has: a transport that sends faster than real time (a TTS
burst, Pipecat's WebSocket output at twice real time) queues its audio one piece after another, as
the caller hears it. A gap longer than `jitter_seconds` is a silence and is kept as one; shorter
ones are the network's jitter and are closed up.

`take_until(t)` hands out the stereo PCM up to `t` seconds on the call's clock once, whatever each
side has (a side with nothing is silent there): the recording's length is the call's, never the
shorter side's (pipecat#1256). What a side holds ahead of the clock is bounded
(`max_ahead_seconds`); past it, `add` refuses and the recording is degraded.
"""

from __future__ import annotations

from collections import deque

import numpy as np

SIDES = 2  # 0: the caller (left), 1: the bot (right)
CALLER = 0


class _Side:
    """One side's audio from the clock's last take on: the chunks it came in (no copying per frame),
    and silences as their length in samples (they can be shortened until handed out)."""

    def __init__(self) -> None:
        self.chunks: deque[np.ndarray | int] = deque()
        self.held = 0  # samples

    def append(self, chunk: np.ndarray | int) -> None:
        if (chunk if isinstance(chunk, int) else len(chunk)) > 0:
            self.chunks.append(chunk)
            self.held += chunk if isinstance(chunk, int) else len(chunk)

    def delay(self, samples: int) -> None:
        """Moves everything held `samples` later (a silence before it)."""
        if self.held and samples > 0:
            self.chunks.appendleft(samples)
            self.held += samples

    def starts_silent(self) -> bool:
        return bool(self.chunks) and isinstance(self.chunks[0], int)

    def shorten_silences(self, samples: int) -> int:
        """Shortens the held silences, latest first, by up to `samples`: how many it took out."""
        taken = 0
        for index in range(len(self.chunks) - 1, -1, -1):
            chunk = self.chunks[index]
            if taken == samples:
                break
            if isinstance(chunk, int):
                cut = min(chunk, samples - taken)
                self.chunks[index] = chunk - cut
                taken += cut
        if taken:
            self.chunks = deque(c for c in self.chunks if not isinstance(c, int) or c > 0)
            self.held -= taken
        return taken

    def take_into(self, out: np.ndarray) -> None:
        """Fills `out` from the front (what is missing stays as it is: silence)."""
        filled = 0
        while filled < len(out) and self.chunks:
            chunk = self.chunks[0]
            size = chunk if isinstance(chunk, int) else len(chunk)
            taken = min(size, len(out) - filled)
            if not isinstance(chunk, int):
                out[filled:filled + taken] = chunk[:taken]
            filled += taken
            if taken == size:
                self.chunks.popleft()
            else:
                self.chunks[0] = chunk - taken if isinstance(chunk, int) else chunk[taken:]
        self.held -= filled


class TwoTrackClock:
    def __init__(self, sample_rate: int, *, jitter_seconds: float = 0.06, max_ahead_seconds: float = 120.0) -> None:
        self.sample_rate = sample_rate
        self._jitter = round(jitter_seconds * sample_rate)
        self._max_ahead = round(max_ahead_seconds * sample_rate)
        self.origin: float | None = None  # time.monotonic() of the call's start (position 0)
        self.moved_back = 0.0  # seconds the origin moved back in all: what was timed before is that much later
        self.emitted = 0  # samples handed out, per side
        self._sides = [_Side() for _ in range(SIDES)]
        self._bot_owed = 0  # samples the origin moved back that the bot's held audio has not moved yet
        self._ends = [0] * SIDES  # where each side's audio ends (samples)
        self.late = 0.0  # seconds the bot's audio was laid after it was played, at most: its moment was handed out

    def at(self, t: float) -> float:
        """Seconds on the call's clock of the monotonic time `t` (0 before any audio)."""
        return 0.0 if self.origin is None else t - self.origin

    def end(self, side: int) -> float:
        """Seconds on the call's clock where `side`'s audio so far ends."""
        return self._ends[side] / self.sample_rate

    def add(self, side: int, samples: np.ndarray, start: float) -> float | None:
        """Places mono int16 `samples` of `side` that began at the monotonic time `start` (the
        caller's: when it was heard, its arrival less its length; the bot's: when it was played).
        Where it was placed (seconds on the call's clock), or None when refused (that side is too
        far ahead of the clock)."""
        if self.origin is None:
            self.origin = start
        held = self._sides[side]
        cursor = self.emitted + held.held  # where this side's audio ends so far
        begins = round((start - self.origin) * self.sample_rate)
        if side == CALLER and begins < cursor:  # it would be placed after it arrived
            self._heard_earlier(cursor - begins)
            cursor = begins = self.emitted + held.held
        if side != CALLER and not held.held:  # laid at the cursor when its own moment was handed out already
            self.late = max(self.late, (self.emitted - max(begins, self._ends[side])) / self.sample_rate)
        gap = begins - cursor if begins - cursor > self._jitter else 0
        if held.held + gap + len(samples) > self._max_ahead:
            return None
        held.append(gap)
        held.append(samples)
        self._ends[side] = cursor + gap + len(samples)
        return (cursor + gap) / self.sample_rate

    def _heard_earlier(self, samples: int) -> None:
        """The caller's audio reaches `samples` past its arrival: the silences laid before it were
        too long, or (none left) the call began that much earlier than the clock thought."""
        samples -= self._sides[CALLER].shorten_silences(samples)
        if samples <= 0:
            return
        assert self.origin is not None
        self.origin -= samples / self.sample_rate
        self.moved_back += samples / self.sample_rate
        # The bot's held audio was placed from the later origin: it moves too, at once where a silence
        # leads it, else once by more than the jitter (a backlog): a few ms never split a bot's word.
        bot = self._sides[1 - CALLER]
        self._bot_owed = self._bot_owed + samples if bot.held else 0
        if self._bot_owed > self._jitter or (self._bot_owed and bot.starts_silent()):
            bot.delay(self._bot_owed)
            self._ends[1 - CALLER] += self._bot_owed
            self._bot_owed = 0

    def take_until(self, t: float) -> bytes:
        """Interleaved stereo int16 PCM (little-endian) from the last take up to `t` seconds on the call's clock."""
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
