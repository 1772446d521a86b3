"""The automatic rollback on a canary's first audio and turn latency, judged where it is decided: the
real release watch, rule (as the deployment's settings make it), sample and traffic, told the sessions'
timelines as a dispatcher records them from its bots' reports (`joined`, `first_audio`, and `ended`
with the conversation's figures). The bots that make those reports run for real in
tests/releases/test_late_canary.py and tests/releases/test_slow_turn_canary.py; the rule's own
sweeps (samples, margins, quantiles) are in tests/dispatcher/releases/test_health.py and
test_conversation_health.py."""

from __future__ import annotations

import re
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
# The samples the end-to-end tests set: 15 against 15 for first audio, 11 against 11 for the turns.
FIRST_AUDIO_SAMPLE, TURN_SAMPLE = 15, 11


def _session(release: str, at: float, first_audio: float, latencies: list[float]) -> Timeline:
    """A warm session of `release` whose caller joined, heard the bot `first_audio` s later, spoke
    once per entry of `latencies` (each answered that long after the caller stopped) and hung up 8 s in."""
    figures = {"caller_turns": len(latencies), "unanswered": 0, "bot_turns": len(latencies) + 1, "cut_off": 0,
               "latencies": latencies, "left_in_first_turn": not latencies}
    return [{"event": "requested", "at": at, "release": release, "release_chosen_by": "weight"},
            {"event": "claimed", "at": at + 0.05}, {"event": "ready", "at": at + 0.1},
            {"event": "joined", "at": at + 1.0}, {"event": "first_audio", "at": at + 1.0 + first_audio},
            {"event": "ended", "at": at + 9.0, "reason": "peer_disconnected", "conversation": figures}]


async def _watch(tmp_path: Path, env: dict[str, str], timelines: dict[str, Timeline]) -> tuple[ReleaseWatch,
                                                                                               LiveReleases]:
    releases = LiveReleases(Catalogue.from_env(release_env(tmp_path, "stable=50,next=50"), local=True),
                            MemoryReleaseBook())
    await releases.refresh()

    async def read(session_id: str) -> Timeline:
        return timelines[session_id]

    return ReleaseWatch(releases, SharedSample(ReleaseHealth(health_rule(env)), MemoryReleaseSamples()), read), releases


async def _end(watch: ReleaseWatch, timelines: dict[str, Timeline], session_id: str, events: Timeline) -> None:
    timelines[session_id] = events
    watch.timeline_event(session_id, events[-1])
    await watch.settled()


async def _judged_weights(tmp_path: Path, env: dict[str, str], stable: list[Timeline], canary: list[Timeline],
                          ) -> tuple[list[int], LiveReleases, ReleaseWatch]:
    """The stable's sessions end, then the canary's one by one: the canary's weight after each."""
    timelines: dict[str, Timeline] = {}
    watch, releases = await _watch(tmp_path, env, timelines)
    for n, events in enumerate(stable):
        await _end(watch, timelines, f"stable-{n}", events)
    weights = []
    for n, events in enumerate(canary):
        await _end(watch, timelines, f"next-{n}", events)
        weights.append(releases.traffic.weights["next"])
    return weights, releases, watch


async def test_a_canary_whose_bots_greet_3_s_late_is_rolled_back_on_first_audio_at_its_sample(
        tmp_path: Path) -> None:
    env = {"RELEASE_HEALTH_MIN_CANARY": str(FIRST_AUDIO_SAMPLE), "RELEASE_HEALTH_MIN_STABLE": str(FIRST_AUDIO_SAMPLE)}
    # Spread as a loaded machine spreads them; the canary's greeting 3 s after its caller joined.
    stable = [_session("stable", 1000.0 + n, 0.4 + 0.05 * n, []) for n in range(FIRST_AUDIO_SAMPLE)]
    canary = [_session("next", 1100.0 + n, 3.4 + 0.05 * n, []) for n in range(FIRST_AUDIO_SAMPLE + 2)]
    weights, releases, watch = await _judged_weights(tmp_path, env, stable, canary)
    assert weights[:FIRST_AUDIO_SAMPLE - 1] == [50] * (FIRST_AUDIO_SAMPLE - 1), "judged before its sample"
    assert weights[FIRST_AUDIO_SAMPLE - 1:] == [0, 0, 0], f"not rolled back at its sample: {weights}"
    assert releases.traffic.weights["stable"] == 100
    reason = releases.traffic.held["next"]
    found = re.fullmatch(r"median first audio (\d+\.\d) s over (\d+) sessions \(stable: (\d+\.\d) s over (\d+)\)",
                         reason)
    assert found, reason
    assert int(found[2]) == FIRST_AUDIO_SAMPLE and int(found[4]) == FIRST_AUDIO_SAMPLE, reason
    assert float(found[1]) - float(found[3]) >= 2.5, reason
    assert (await watch.view("stable", releases.traffic))["state"] == "healthy"


async def test_a_canary_whose_bots_answer_each_turn_1_s_later_is_rolled_back_on_turn_latency_at_its_sample(
        tmp_path: Path) -> None:
    env = {"RELEASE_HEALTH_MIN_CANARY": str(TURN_SAMPLE), "RELEASE_HEALTH_MIN_STABLE": str(TURN_SAMPLE)}
    # Greeted alike (the greeting is not delayed): only the turns tell them apart.
    stable = [_session("stable", 1000.0 + n, 0.5 + 0.05 * n, [0.8 + 0.03 * n]) for n in range(TURN_SAMPLE)]
    canary = [_session("next", 1100.0 + n, 0.5 + 0.05 * n, [1.8 + 0.03 * n]) for n in range(TURN_SAMPLE + 2)]
    weights, releases, watch = await _judged_weights(tmp_path, env, stable, canary)
    assert weights[:TURN_SAMPLE - 1] == [50] * (TURN_SAMPLE - 1), "judged before its sample"
    assert weights[TURN_SAMPLE - 1:] == [0, 0, 0], f"not rolled back at its sample: {weights}"
    reason = releases.traffic.held["next"]
    found = re.fullmatch(r"median turn latency (\d+\.\d) s over (\d+) sessions \(stable: (\d+\.\d) s over (\d+)\)",
                         reason)
    assert found, reason
    assert int(found[2]) == TURN_SAMPLE and float(found[1]) - float(found[3]) >= 0.7, reason
    assert (await watch.view("stable", releases.traffic))["state"] == "healthy"


async def test_a_canary_whose_bots_greet_and_answer_as_the_stables_keeps_its_traffic(tmp_path: Path) -> None:
    env = {"RELEASE_HEALTH_MIN_CANARY": str(TURN_SAMPLE), "RELEASE_HEALTH_MIN_STABLE": str(TURN_SAMPLE)}
    stable = [_session("stable", 1000.0 + n, 0.5 + 0.05 * n, [0.8 + 0.03 * n]) for n in range(TURN_SAMPLE)]
    canary = [_session("next", 1100.0 + n, 0.5 + 0.05 * n, [0.8 + 0.03 * n]) for n in range(3 * TURN_SAMPLE)]
    weights, releases, watch = await _judged_weights(tmp_path, env, stable, canary)
    assert set(weights) == {50} and "next" not in releases.traffic.held
    assert (await watch.view("next", releases.traffic))["state"] == "healthy"
