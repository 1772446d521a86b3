"""A canary's breach that the stable release's sample completes is acted on at once by one dispatcher
(no store: its sample in memory), judged where it is decided: the real release watch, rule, sample and
traffic, told the sessions' timelines as a dispatcher records them. The canary's sessions all fail
first, judged while the stable release has no sample; the stable's last session then completes the
sample, and no canary session ends after it.

The same with real processes (a dispatcher's audit line, log line and webhook within 2 s of the stable's
last end, its bots dying at boot) runs on two replicas sharing a redis-server, the store-backed sample,
in tests/replicas/test_release_rollback.py; on the store's sample in-process, in
tests/dispatcher/store/test_release_rollback_replicas.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.health import ReleaseHealth
from dispatcher.releases.health_settings import health_rule
from dispatcher.releases.live import LiveReleases
from dispatcher.sessions.release_sample import SharedSample
from dispatcher.sessions.release_watch import ReleaseWatch
from dispatcher.store.release_book import MemoryReleaseBook
from dispatcher.store.release_samples import MemoryReleaseSamples
from tests.support.releases import release_env

Timeline = list[dict[str, Any]]
SAMPLE = 6  # RELEASE_HEALTH_MIN_CANARY and _MIN_STABLE: 6 of 6 failed against 0 of 6 breaches


def _session(release: str, at: float, *, broken: bool = False) -> Timeline:
    """A drawn session as the dispatcher records it: a stable one served its caller for a minute; a
    broken canary's machine died at boot, before its bot said anything."""
    start = [{"event": "requested", "at": at, "release": release, "release_chosen_by": "weight"},
             {"event": "launched", "at": at + 0.1}]
    if broken:
        return [*start, {"event": "machine_ended", "at": at + 0.9, "state": "failed", "detail": "exit code 1"}]
    return [*start, {"event": "ready", "at": at + 1.0}, {"event": "joined", "at": at + 1.5},
            {"event": "first_audio", "at": at + 2.0},
            {"event": "ended", "at": at + 61.0, "reason": "peer_disconnected"}]


async def test_a_breach_completed_by_the_stable_sample_rolls_the_canary_back_at_once(tmp_path: Path) -> None:
    env = {"RELEASE_HEALTH_MIN_CANARY": str(SAMPLE), "RELEASE_HEALTH_MIN_STABLE": str(SAMPLE)}
    releases = LiveReleases(Catalogue.from_env(release_env(tmp_path, "stable=50,next=50"), local=True),
                            MemoryReleaseBook())
    await releases.refresh()
    timelines: dict[str, Timeline] = {}
    pushed: list[tuple[str, str, dict[str, Any]]] = []

    async def read(session_id: str) -> Timeline:
        return timelines[session_id]

    watch = ReleaseWatch(releases, SharedSample(ReleaseHealth(health_rule(env)), MemoryReleaseSamples()), read,
                         lambda *hook: pushed.append(hook))

    async def ended(session_id: str, events: Timeline) -> None:
        timelines[session_id] = events
        watch.timeline_event(session_id, events[-1])
        await watch.settled()

    for n in range(SAMPLE):  # the canary's failures first: no stable sample yet
        await ended(f"next-{n}", _session("next", 1000.0 + n, broken=True))
    for n in range(SAMPLE - 1):
        await ended(f"stable-{n}", _session("stable", 1000.0 + n))
    assert releases.traffic.weights == {"stable": 50, "next": 50}, "rolled back before the stable's sample"
    await ended(f"stable-{SAMPLE - 1}", _session("stable", 1000.0 + SAMPLE))  # no canary session follows
    assert releases.traffic.weights == {"stable": 100, "next": 0}, "not rolled back at the stable's minimum"
    history = await releases.history(5)
    rollbacks = [line for line in history if line["by"] == "automatic rollback"]
    assert len(rollbacks) == 1 and rollbacks[0]["to"] == {"stable": 100, "next": 0}, history
    assert rollbacks[0]["reason"].startswith(f"next: {SAMPLE} of {SAMPLE} sessions failed ({SAMPLE} failed to start)")
    assert [(kind, hook["release"]) for _, kind, hook in pushed] == [("release.rolled_back", "next")]
