"""The automatic rollback's sample, the deployment's: each judged session is recorded once in the
coordination's `ReleaseSamples` (the store with several replicas, this process's memory without),
and this replica's judge (`ReleaseHealth`) is a copy of it, brought up to date before each judgement
and each view by reading only what was added since its last look. So every replica judges on every
replica's sessions, the minimum sample is the deployment's, and a replica that restarts reads the
sample back.

A release judged afresh (an operator gave a rolled-back release traffic again) is restarted from the
moment of that change, the same for every replica (the change's version time), so a replica that
hears of it late drops nothing recorded after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from dispatcher.releases.conversation import Talk
from dispatcher.releases.health import ReleaseHealth, SessionOutcome, entry_of
from dispatcher.releases.health_window import Entry
from dispatcher.store.coordination import ReleaseSamples


class SharedSample:
    def __init__(self, health: ReleaseHealth, samples: ReleaseSamples,
                 clock: Callable[[], float] = time.time) -> None:
        self.health = health
        self._samples = samples
        self._clock = clock
        self._read: dict[str, int] = {}  # each release: the last number copied here
        self._since: dict[str, float] = {}  # each release: judged from then on (epoch seconds)
        # One look at a time: two at once (sessions ending together, a `GET /releases`) would both read
        # past the same last number and copy each new session into the judge twice.
        self._looking = asyncio.Lock()

    async def add(self, session_id: str, outcome: SessionOutcome) -> bool:
        """Records the session's outcome for the deployment; False when it was recorded already
        (its end seen twice, here or at another replica). Raises `StoreUnavailable`."""
        rule = self.health.rule
        entry = entry_of(outcome, self._clock())
        # After the four that dispatchers before conversations read, each slot only where one after
        # it is set: None is what readers before it take as none (no talk, no key, a start of no kind).
        later: list[Any] = [entry.talk.stored() if entry.talk is not None else None, entry.key, entry.warm]
        if entry.censored:
            later.append(True)
        while later and later[-1] is None:
            later.pop()
        recorded = [entry.at, entry.failure, entry.ready, entry.first_audio, *later]
        return await self._samples.add(outcome.release, session_id, recorded, keep=rule.history_cap,
                                       keep_seconds=rule.max_age_seconds)

    async def catch_up(self, *releases: str) -> None:
        """Copies what was recorded for `releases` since the last look. Raises `StoreUnavailable`."""
        async with self._looking:
            for release in dict.fromkeys(releases):
                await self._copy(release)

    async def _copy(self, release: str) -> None:
        read = await self._samples.read(release, self._read.get(release, 0))
        since = max(read.since, self._since.get(release, 0.0))
        if read.last < self._read.get(release, 0) or since > self._since.get(release, 0.0):
            # Judged afresh (or the store lost the sample): copied again from its first kept entry.
            self.health.reset(release)
            self._since[release] = since
            self._read[release] = 0
            read = await self._samples.read(release, 0)
        for _, entry in read.entries:
            taken = _entry(entry)
            if taken is not None and taken[0] >= since:
                self.health.take(release, taken)
        self._read[release] = max(self._read.get(release, 0), read.last)

    async def restart(self, release: str, since: float) -> None:
        """`release` is judged afresh from `since`: here at once, for every replica through the store
        (raises `StoreUnavailable`: this replica has restarted it anyway, the others hear of the change
        themselves)."""
        async with self._looking:  # not under a look that would copy the older sessions back
            self.health.reset(release)
            self._since[release] = max(since, self._since.get(release, 0.0))
            self._read[release] = 0
        await self._samples.restart(release, since, self.health.rule.max_age_seconds)


def _entry(raw: list[Any]) -> Entry | None:
    """A recorded entry, or None for one that is not ours (the store is written by others too); one
    without the conversation's figures, the caller's id or its start's kind (none reported, or
    recorded before them) has None there."""
    try:
        at, failure, ready, first_audio, *rest = raw
        key = rest[1] if len(rest) > 1 and isinstance(rest[1], str) else None
        warm = rest[2] if len(rest) > 2 and isinstance(rest[2], bool) else None
        return Entry(float(at), None if failure is None else str(failure), None if ready is None else float(ready),
                     None if first_audio is None else float(first_audio), Talk.from_stored(rest[0]) if rest else None,
                     key, warm, len(rest) > 3 and rest[3] is True)
    except (TypeError, ValueError):
        return None
