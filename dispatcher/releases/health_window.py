"""What the rollback judge remembers of one release: its recent sessions, and its sessions by time.

`recent` is the last `size` sessions (kept counted and sorted as they come, for judging the release
as a canary and for a quick first comparison with it as the stable release); `history` is every
session of the last `max_age` (at most `history_cap`), from which the stable release's sessions over
the same hours as a canary's window are drawn.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

# (when observed, why it failed or None, ready seconds, first-audio seconds)
Entry = tuple[float, str | None, float | None, float | None]


@dataclass
class Sample:
    """Sessions as a comparison sees them: how many, failures by kind, each latency sorted."""

    sessions: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    ready: list[float] = field(default_factory=list)
    first_audio: list[float] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def latency(self, signal: str) -> list[float]:
        return self.ready if signal == "ready" else self.first_audio

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> Sample:
        sample = cls()
        for _, failure, ready, first_audio in entries:
            sample.sessions += 1
            if failure is not None:
                sample.failures[failure] = sample.failures.get(failure, 0) + 1
            if ready is not None:
                sample.ready.append(ready)
            if first_audio is not None:
                sample.first_audio.append(first_audio)
        sample.ready.sort()
        sample.first_audio.sort()
        return sample


class Window:
    def __init__(self, size: int, max_age: float, history_cap: int) -> None:
        self.size, self.max_age, self.history_cap = size, max_age, history_cap
        self.entries: deque[Entry] = deque()  # the recent ones, oldest first
        self.recent = Sample()
        self.history: deque[Entry] = deque()

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.history.append(entry)
        _, failure, ready, first_audio = entry
        recent = self.recent
        recent.sessions += 1
        if failure is not None:
            recent.failures[failure] = recent.failures.get(failure, 0) + 1
        if ready is not None:
            bisect.insort(recent.ready, ready)
        if first_audio is not None:
            bisect.insort(recent.first_audio, first_audio)
        self.expire(entry[0])

    def expire(self, now: float) -> None:
        oldest, entries, recent, size = now - self.max_age, self.entries, self.recent, self.size
        while entries and (len(entries) > size or entries[0][0] < oldest):
            _, failure, ready, first_audio = entries.popleft()
            recent.sessions -= 1
            if failure is not None:
                recent.failures[failure] -= 1
            if ready is not None:
                del recent.ready[bisect.bisect_left(recent.ready, ready)]
            if first_audio is not None:
                del recent.first_audio[bisect.bisect_left(recent.first_audio, first_audio)]
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

    def since_time(self, start: float) -> Sample:
        """The sessions observed at or after `start`."""
        taken: list[Entry] = []
        for entry in reversed(self.history):
            if entry[0] < start:
                break
            taken.append(entry)
        return Sample.of(taken)
