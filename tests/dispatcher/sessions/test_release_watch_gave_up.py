"""A caller's stop before its bot was ready, as the release watch judges it (the real judge, traffic
and sample): a failed start only past the stable release's own p95 time to ready over its starts of
the same kind (warm: the reserve served it; cold), so a canary whose smaller reserve leaves more of
its starts cold is not held to the stable release's warm ones; the dispatcher's quote for a cold start
only where the stable has too few cold starts to say. A quicker stop is a censored time to ready."""

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


COLD = [{**WARM[0]}, {"event": "launched", "at": 1000.1}, {"event": "ready", "at": 1001.5}, WARM[3]]


async def _recorded(tmp_path: Path, cold_start: float, stable: Timeline = WARM) -> list[list[Any]]:
    """The canary's recorded entries after 120 stable sessions (`stable`: warm, ready in 0.6 s) and one
    canary caller who gave up on a cold start not ready after 8 s, the dispatcher quoting `cold_start` s."""
    releases = LiveReleases(Catalogue.from_env(release_env(tmp_path), local=True), MemoryReleaseBook())
    await releases.refresh()
    timelines: dict[str, Timeline] = {f"s{n}": stable for n in range(120)} | {"gave-up": GAVE_UP}

    async def read(session_id: str) -> Timeline:
        return timelines[session_id]

    samples = MemoryReleaseSamples()
    watch = ReleaseWatch(releases, SharedSample(ReleaseHealth(), samples), read, cold_start=lambda: cold_start)
    for session_id, events in timelines.items():
        watch.timeline_event(session_id, events[-1])
        await watch.settled()
    return [entry for _, entry in (await samples.read("next", 0)).entries]


async def test_a_caller_who_gave_up_past_a_cold_starts_quote_is_a_failed_start(tmp_path: Path) -> None:
    [entry] = await _recorded(tmp_path, cold_start=3.0)
    assert entry[1] == "failed to start" and round(entry[2], 3) == 8.0


async def test_a_caller_who_gave_up_within_a_cold_starts_quote_is_a_censored_wait_not_a_failure(
        tmp_path: Path) -> None:
    # The stable release has no cold start of its own to bound the wait: the quote does.
    [entry] = await _recorded(tmp_path, cold_start=20.0)
    assert entry[1] is None and round(entry[2], 3) == 8.0 and entry[6:] == [False, True]  # cold, at least 8 s


async def test_the_stables_own_cold_starts_bound_a_callers_wait_whatever_the_quote(tmp_path: Path) -> None:
    # A cloud provider's quote for a cold start (a minute) is past any caller's patience; the stable
    # release's own cold starts, ready in 1.5 s, say a canary's start not ready in 8 s failed.
    [entry] = await _recorded(tmp_path, cold_start=60.0, stable=COLD)
    assert entry[1] == "failed to start"
