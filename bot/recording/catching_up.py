"""Whether the caller's side is still catching up, so that nothing of the call is handed out yet.

A backlog of the caller's audio (a phone call's first seconds, held by the dispatcher while the bot
started) can reach the recorder over seconds on a busy host, not at once: each piece says the call
began earlier than the last did, and moves the call's start back (clock.py). What the clock holds
moves with it, and so do the transcript's times; what it already handed out cannot. A bot's greeting
played meanwhile and handed out before the backlog was all in would sit in the WAV earlier than
its transcript line and than where the caller heard it. So while the start keeps moving, takes wait;
a caller that never stops arriving ahead of real time (a broken client) waits `MAX_HELD_SECONDS`
at most, and the clock's own bound on what it holds still applies.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.recording.clock import TwoTrackClock

# The call's start moved back by more than this since the last look: the caller's audio came ahead
# of real time (a backlog arriving). A few ms are the network's jitter ratcheting the start back.
CATCHING_UP_SECONDS = 0.02
MAX_HELD_SECONDS = 30.0


class CatchingUp:
    def __init__(self, clock: TwoTrackClock, now: Callable[[], float]) -> None:
        self._clock = clock
        self._now = now
        self._seen = 0.0  # the clock's `moved_back` at the last look
        self._since: float | None = None  # when the current wait began (monotonic)

    def holds(self) -> bool:
        """Whether a take now must wait: the call's start moved since the last look (a backlog is
        still arriving), and it has not waited `MAX_HELD_SECONDS` already."""
        moved, self._seen = self._clock.moved_back - self._seen, self._clock.moved_back
        if moved <= CATCHING_UP_SECONDS:
            self._since = None
            return False
        if self._since is None:
            self._since = self._now()
        return self._now() - self._since < MAX_HELD_SECONDS
