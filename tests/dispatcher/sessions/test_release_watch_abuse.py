"""What one client key can do to automatic rollback (dispatcher/sessions/release_watch.py) with the
sessions it starts: the real judge, the real traffic and timelines as the dispatcher records them.

A caller who hangs up within 5 s is a failure of the release, so a key's own sessions could roll
back a healthy canary or hide a broken one. Pinned sessions (`POST /start` with `release`) are no
sample of the release's callers and are left out of the judgement: both attacks fail. (A key that
hangs up on the sessions the draw gave the canary remains possible: docs/releases.md.)"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.health import ReleaseHealth
from dispatcher.releases.live import LiveReleases
from dispatcher.sessions.release_sample import SharedSample
from dispatcher.sessions.release_watch import ReleaseWatch
from dispatcher.store.release_book import MemoryReleaseBook
from dispatcher.store.release_samples import MemoryReleaseSamples
from tests.support.releases import release_env

Timeline = list[dict[str, Any]]
ids = (f"{n:024x}" for n in itertools.count(1))


def session(release: str, chosen_by: str, *, lasted: float, reason: str = "peer_disconnected") -> Timeline:
    """A session's timeline as the dispatcher records it: started warm, joined at once, ended `lasted` later."""
    return [{"event": "requested", "at": 1000.0, "release": release, "release_chosen_by": chosen_by},
            {"event": "claimed", "at": 1000.1}, {"event": "ready", "at": 1000.4}, {"event": "joined", "at": 1001.0},
            {"event": "first_audio", "at": 1001.8}, {"event": "ended", "at": 1001.0 + lasted, "reason": reason}]


async def judged(tmp_path: Path, sessions: list[Timeline]) -> dict[str, int]:
    """Each release's weight after every session ended (stable at 90, the canary `next` at 10)."""
    releases = LiveReleases(Catalogue.from_env(release_env(tmp_path), local=True), MemoryReleaseBook())
    await releases.refresh()
    timelines = {next(ids): events for events in sessions}

    async def read(session_id: str) -> Timeline:
        return timelines[session_id]

    watch = ReleaseWatch(releases, SharedSample(ReleaseHealth(), MemoryReleaseSamples()), read)
    for session_id, events in timelines.items():
        watch.timeline_event(session_id, events[-1])
        await watch.settled()
    return dict(releases.traffic.weights)


async def test_one_key_pinning_a_healthy_canary_and_hanging_up_at_once_does_not_roll_it_back(tmp_path: Path) -> None:
    customers = [session("stable", "weight", lasted=120) for _ in range(300)]
    customers += [session("next", "weight", lasted=120) for _ in range(30)]  # the canary serves its callers well
    attacker = [session("next", "pinned", lasted=2) for _ in range(20)]
    assert await judged(tmp_path, customers + attacker) == {"stable": 90, "next": 10}


async def test_one_key_hanging_up_on_the_stable_release_does_not_hide_a_broken_canary(tmp_path: Path) -> None:
    customers = [session("stable", "weight", lasted=120) for _ in range(100)]
    attacker = [session("stable", "pinned", lasted=2) for _ in range(2000)]
    broken = [session("next", "weight", lasted=0.5, reason="bot_failed") for _ in range(30)]
    assert await judged(tmp_path, customers + attacker + broken) == {"stable": 100, "next": 0}


async def test_a_machine_end_seen_before_its_bots_own_report_waits_for_that_report(tmp_path: Path) -> None:
    """Locally the process's exit can be seen a moment before its bot's `ended` report arrives on its
    channel: the bot's own reason (a caller who never connected) is what the session is judged on."""
    releases = LiveReleases(Catalogue.from_env(release_env(tmp_path), local=True), MemoryReleaseBook())
    await releases.refresh()
    events: Timeline = [{"event": "requested", "at": 1000.0, "release": "next", "release_chosen_by": "weight"},
                        {"event": "launched", "at": 1000.1}, {"event": "ready", "at": 1001.0}]

    reads: list[int] = []

    async def read(session_id: str) -> Timeline:
        reads.append(1)
        if len(reads) == 2:  # the bot's report lands while the judge waits for it
            events.insert(3, {"event": "ended", "at": 1011.0, "reason": "connect_timeout", "exit_code": 3})
        return list(events)

    samples = MemoryReleaseSamples()
    watch = ReleaseWatch(releases, SharedSample(ReleaseHealth(), samples), read)
    exited = {"event": "machine_ended", "at": 1011.2, "state": "failed", "detail": "exit code 3"}
    events.append(exited)
    watch.timeline_event("s-1", exited)
    await watch.settled()
    assert [entry[1] for _, entry in (await samples.read("next", 0)).entries] == [None]  # no failure of the bot's
