"""A caller's stop before its bot was ready, as the release watch judges it (the real judge, traffic
and sample): a failed start only past both the stable release's time to ready and the dispatcher's
own quote for a cold start, so a canary whose smaller reserve leaves more of its starts cold is not
held to the stable release's warm ones."""

from __future__ import annotations

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
WARM = [{"event": "requested", "at": 1000.0, "release": "stable", "release_chosen_by": "weight"},
        {"event": "claimed", "at": 1000.1}, {"event": "ready", "at": 1000.6},
        {"event": "ended", "at": 1100.0, "reason": "peer_disconnected"}]
GAVE_UP = [{"event": "requested", "at": 1000.0, "release": "next", "release_chosen_by": "weight"},
           {"event": "launched", "at": 1000.2}, {"event": "stop_requested", "at": 1008.0},
           {"event": "machine_ended", "at": 1008.3, "state": "ended", "detail": "stopped"}]


async def _failures(tmp_path: Path, cold_start: float) -> list[str | None]:
    """The canary's recorded failures after 120 warm stable sessions (ready in 0.6 s) and one canary
    caller who gave up on a bot not ready after 8 s, the dispatcher quoting `cold_start` s."""
    releases = LiveReleases(Catalogue.from_env(release_env(tmp_path), local=True), MemoryReleaseBook())
    await releases.refresh()
    timelines: dict[str, Timeline] = {f"s{n}": WARM for n in range(120)} | {"gave-up": GAVE_UP}

    async def read(session_id: str) -> Timeline:
        return timelines[session_id]

    samples = MemoryReleaseSamples()
    watch = ReleaseWatch(releases, SharedSample(ReleaseHealth(), samples), read, cold_start=lambda: cold_start)
    for session_id, events in timelines.items():
        watch.timeline_event(session_id, events[-1])
        await watch.settled()
    return [entry[1] for _, entry in (await samples.read("next", 0)).entries]


async def test_a_caller_who_gave_up_past_a_cold_starts_quote_is_a_failed_start(tmp_path: Path) -> None:
    assert await _failures(tmp_path, cold_start=3.0) == ["failed to start"]


async def test_a_caller_who_gave_up_within_a_cold_starts_quote_is_not_judged(tmp_path: Path) -> None:
    assert await _failures(tmp_path, cold_start=20.0) == []
