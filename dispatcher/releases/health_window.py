"""What the rollback judge remembers of one release: its recent sessions, and its sessions by time.

`recent` is the last `size` sessions (kept counted and sorted as they come, for judging the release
as a canary and for a quick first comparison with it as the stable release); `history` is every
session of the last `max_age` (at most `history_cap`), from which the stable release's sessions over
the same hours as a canary's window are drawn.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from dispatcher.releases.conversation import Talk


class Entry(NamedTuple):
    """What the judge keeps of one session (None where it was not reported, or recorded before it was kept)."""

    at: float  # when observed (epoch seconds)
    failure: str | None  # why it failed, or None
    ready: float | None  # seconds to a ready bot; at least that long where `censored`
    first_audio: float | None
    talk: Talk | None = None  # the conversation's figures: dispatcher/releases/conversation.py
    key: str | None = None  # the caller's id
    warm: bool | None = None  # the reserve served its start (its time to ready is a warm one's)
    # Its caller stopped it before its bot was ready: `ready` is how long they waited, the bot not
    # ready by then. Without a failure it counts for the time to ready only (a quicker stop than the
    # stable release takes says nothing of the release's failures, for it or against it).
    censored: bool = False


@dataclass
class Sample:
    """Sessions as a comparison sees them: how many, failures by kind, each latency sorted, and the
    conversation's figures of those whose bot host reported them (`talked`)."""

    sessions: int = 0  # judged for failures: all but the stops before ready that say nothing of them
    failures: dict[str, int] = field(default_factory=dict)
    ready: list[float] = field(default_factory=list)
    waited: list[float] = field(default_factory=list)  # censored times to ready: at least these long
    first_audio: list[float] = field(default_factory=list)
    talked: int = 0
    unanswered: int = 0  # sessions with a caller turn the bot left unanswered
    left_early: int = 0  # sessions the caller left within the first turn
    turn_latency: list[float] = field(default_factory=list)  # each session's median answer latency
    cut_off: list[float] = field(default_factory=list)  # each session's share of bot turns cut off

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def latency(self, signal: str, *, censored_high: bool = False) -> list[float]:
        """The sorted values of a quantile signal (`ready`, `first_audio`, `turn_latency`, `cut_off`).
        A censored time to ready is taken at its wait, or as unbounded (`censored_high`): each side of a
        comparison reads them so that they can only make the canary look better, never worse."""
        values: list[float] = getattr(self, signal)
        if signal != "ready" or not self.waited:
            return values
        if censored_high:
            return [*values, *([math.inf] * len(self.waited))]
        return list(heapq.merge(values, self.waited))

    def count(self, signal: str) -> tuple[int, int]:
        """(sessions that count for a share signal, those among them it counts against the release)."""
        if signal == "failures":
            return self.sessions, self.failed
        return self.talked, getattr(self, signal)  # `unanswered`, `left_early`

    def add(self, entry: Entry, insort: bool = True) -> None:
        failure, talk = entry.failure, entry.talk
        self.sessions += _judged(entry)
        if failure is not None:
            self.failures[failure] = self.failures.get(failure, 0) + 1
        put = bisect.insort if insort else list.append
        for values, value in self._values(entry):
            put(values, value)
        if talk is not None:
            self.talked += 1
            self.unanswered += talk.unanswered
            self.left_early += talk.left_early

    def remove(self, entry: Entry) -> None:
        failure, talk = entry.failure, entry.talk
        self.sessions -= _judged(entry)
        if failure is not None:
            self.failures[failure] -= 1
        for values, value in self._values(entry):
            del values[bisect.bisect_left(values, value)]
        if talk is not None:
            self.talked -= 1
            self.unanswered -= talk.unanswered
            self.left_early -= talk.left_early

    def _values(self, entry: Entry) -> list[tuple[list[float], float]]:
        talk = entry.talk
        pairs = [(self.waited if entry.censored else self.ready, entry.ready), (self.first_audio, entry.first_audio)]
        if talk is not None:
            pairs += [(self.turn_latency, talk.turn_latency), (self.cut_off, talk.cut_off)]
        return [(values, value) for values, value in pairs if value is not None]

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> Sample:
        sample = cls()
        for entry in entries:
            sample.add(entry, insort=False)
        for values in (sample.ready, sample.waited, sample.first_audio, sample.turn_latency, sample.cut_off):
            values.sort()
        return sample


def _judged(entry: Entry) -> int:
    """1 for a session judged for failures, 0 for a stop before ready that says nothing of them."""
    return int(not entry.censored or entry.failure is not None)


class Window:
    def __init__(self, size: int, max_age: float, history_cap: int) -> None:
        self.size, self.max_age, self.history_cap = size, max_age, history_cap
        self.entries: deque[Entry] = deque()  # the recent ones, oldest first (`expire`: how many)
        self.recent = Sample()
        self.history: deque[Entry] = deque()

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.history.append(entry)
        self.recent.add(entry)
        self.expire(entry[0])

    def expire(self, now: float) -> None:
        oldest, entries, size, recent = now - self.max_age, self.entries, self.size, self.recent
        # `size` sessions judged for failures, and at most as many stops before ready beside them: a
        # caller's quick stops do not push the sessions that speak for failures out of the window.
        while entries and (recent.sessions > size or len(entries) > 2 * size or entries[0][0] < oldest):
            self.recent.remove(entries.popleft())
        history = self.history
        while history and (len(history) > self.history_cap or history[0][0] < oldest):
            history.popleft()

    @property
    def since(self) -> float | None:
        """When the oldest recent session was observed."""
        return self.entries[0][0] if self.entries else None

    def since_last(self, count: int) -> float | None:
        """When the `count`-th newest session still kept was observed (the oldest kept, if fewer)."""
        if not self.history:
            return None
        return self.history[max(0, len(self.history) - count)][0]

    def entries_since(self, start: float) -> list[Entry]:
        """The sessions observed at or after `start`, oldest first."""
        taken: list[Entry] = []
        for entry in reversed(self.history):
            if entry[0] < start:
                break
            taken.append(entry)
        taken.reverse()
        return taken
