"""The automatic rollback's sample is the deployment's: two replicas on a real redis-server (as the
AWS stack's store user), each judging the sessions whose end it sees, roll a broken canary back at
the rule's minimum sample counted over both; a session whose end both see counts once; a replica
that starts reads the sample back; and an operator's weight change keeps the samples. A breach that
the stable release's sample completes (the canary's failures recorded first) is acted on at once,
whichever replica records the stable's last session or reads the sample."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.health import HealthRule, ReleaseHealth
from dispatcher.releases.live import LiveReleases
from dispatcher.sessions.release_outcome import outcome_of
from dispatcher.sessions.release_sample import SharedSample
from dispatcher.sessions.release_watch import ReleaseWatch
from dispatcher.store.redis_coordination import RedisCoordination
from tests.support.redis_server import RedisServer
from tests.support.releases import release_env

Timeline = list[dict[str, Any]]
RULE = HealthRule()  # the documented minimum: 20 canary sessions, 100 stable
ids = (f"{n:024x}" for n in itertools.count(1))


def session(release: str, *, broken: bool = False) -> Timeline:
    """A drawn session as the dispatcher records it: a stable one served its caller for two minutes; a
    broken canary's machine died at boot, before its bot said anything."""
    start = [{"event": "requested", "at": 1000.0, "release": release, "release_chosen_by": "weight"},
             {"event": "launched", "at": 1000.1}]
    if broken:
        return [*start, {"event": "machine_ended", "at": 1000.9, "state": "failed", "detail": "exit code 1"}]
    return [*start, {"event": "ready", "at": 1001.0}, {"event": "joined", "at": 1001.5},
            {"event": "first_audio", "at": 1002.0}, {"event": "ended", "at": 1121.0, "reason": "peer_disconnected"}]


class Replica:
    """One replica's judge and traffic, on its own connection to the shared store."""

    def __init__(self, coordination: RedisCoordination, tmp_path: Path, timelines: dict[str, Timeline]) -> None:
        self.releases = LiveReleases(Catalogue.from_env(release_env(tmp_path), local=True), coordination.releases)

        async def read(session_id: str) -> Timeline:
            return timelines[session_id]

        self.pushed: list[tuple[str, str, dict[str, Any]]] = []  # the lifecycle webhooks it sent
        self.watch = ReleaseWatch(self.releases, SharedSample(ReleaseHealth(RULE), coordination.release_samples),
                                  read, lambda *hook: self.pushed.append(hook))

    async def ended(self, session_id: str, events: Timeline) -> None:
        await self.releases.refresh()  # what its once-a-second read does
        self.watch.timeline_event(session_id, events[-1])
        await self.watch.settled()

    async def weights(self) -> dict[str, int]:
        return dict((await self.releases.refresh()).weights)


async def _ended(replicas: list[Replica], timelines: dict[str, Timeline], events: Timeline) -> None:
    session_id = next(ids)
    timelines[session_id] = events
    for replica in replicas:
        await replica.ended(session_id, events)


async def test_two_replicas_each_judging_half_roll_back_at_the_minimum_sample_overall(
        replica_pair: tuple[RedisCoordination, RedisCoordination], tmp_path: Path, redis: RedisServer) -> None:
    timelines: dict[str, Timeline] = {}
    a, b = (Replica(c, tmp_path, timelines) for c in replica_pair)
    for n in range(RULE.min_stable):
        await _ended([(a, b)[n % 2]], timelines, session("stable"))
    for n in range(RULE.min_canary - 1):
        await _ended([(a, b)[n % 2]], timelines, session("next", broken=True))
    assert await a.weights() == {"stable": 90, "next": 10}  # 19 of the 20 the rule needs, over both
    await _ended([b], timelines, session("next", broken=True))
    assert await a.weights() == {"stable": 100, "next": 0}
    listed = await a.watch.view("next", a.releases.traffic)
    assert listed == {"state": "breached", "reason": "20 of 20 sessions failed (20 failed to start) (stable: 0 of 100)"}
    assert redis.refused() == []


async def test_a_session_whose_end_both_replicas_see_counts_once(
        replica_pair: tuple[RedisCoordination, RedisCoordination], tmp_path: Path) -> None:
    timelines: dict[str, Timeline] = {}
    a, b = (Replica(c, tmp_path, timelines) for c in replica_pair)
    for _ in range(RULE.min_stable):
        await _ended([a, b], timelines, session("stable"))
    for _ in range(RULE.min_canary - 1):
        await _ended([a, b], timelines, session("next", broken=True))
    assert await b.weights() == {"stable": 90, "next": 10}
    assert (await b.watch.view("next", b.releases.traffic))["reason"] == "19 of 20 sessions judged (stable: 100 of 100)"


async def test_a_replica_that_starts_reads_the_sample_back(
        replica_pair: tuple[RedisCoordination, RedisCoordination], tmp_path: Path) -> None:
    timelines: dict[str, Timeline] = {}
    a, b = (Replica(c, tmp_path, timelines) for c in replica_pair)
    for _ in range(RULE.min_stable):
        await _ended([a], timelines, session("stable"))
    for _ in range(RULE.min_canary - 1):
        await _ended([a], timelines, session("next", broken=True))
    restarted = Replica(replica_pair[0], tmp_path, timelines)  # a dispatcher restarted, its memory empty
    await _ended([restarted], timelines, session("next", broken=True))
    assert await b.weights() == {"stable": 100, "next": 0}


async def test_a_weight_change_keeps_the_stable_and_the_canary_samples(
        replica_pair: tuple[RedisCoordination, RedisCoordination], tmp_path: Path) -> None:
    timelines: dict[str, Timeline] = {}
    a, b = (Replica(c, tmp_path, timelines) for c in replica_pair)
    for _ in range(RULE.min_stable):
        await _ended([a], timelines, session("stable"))
    for _ in range(RULE.min_canary - 1):
        await _ended([b], timelines, session("next", broken=True))
    await a.releases.change(lambda t, v: t.with_weight("next", 50, "ops", v))  # the stable's weight moves too
    await b.releases.refresh()
    await _ended([b], timelines, session("next", broken=True))
    assert await a.weights() == {"stable": 100, "next": 0}  # at its 20th session, as the rule says


async def test_a_rolled_back_release_given_traffic_again_is_judged_afresh(
        replica_pair: tuple[RedisCoordination, RedisCoordination], tmp_path: Path) -> None:
    timelines: dict[str, Timeline] = {}
    a, b = (Replica(c, tmp_path, timelines) for c in replica_pair)
    for _ in range(RULE.min_stable):
        await _ended([a], timelines, session("stable"))
    for _ in range(RULE.min_canary):
        await _ended([a], timelines, session("next", broken=True))
    assert await b.weights() == {"stable": 100, "next": 0}
    await b.releases.change(lambda t, v: t.with_weight("next", 10, "ops", v))
    await b.watch.settled()
    await a.releases.refresh()
    await a.watch.settled()
    await _ended([a], timelines, session("next", broken=True))  # its old failures no longer count
    assert await a.weights() == {"stable": 90, "next": 10}
    assert (await a.watch.view("next", a.releases.traffic))["reason"] == "1 of 20 sessions judged (stable: 100 of 100)"


async def test_a_breach_the_stable_sample_completes_is_rolled_back_at_the_replica_that_records_it(
        replica_pair: tuple[RedisCoordination, RedisCoordination], tmp_path: Path) -> None:
    timelines: dict[str, Timeline] = {}
    a, b = (Replica(c, tmp_path, timelines) for c in replica_pair)
    for _ in range(RULE.min_canary):  # the canary's failures first, at one replica: no stable sample yet
        await _ended([a], timelines, session("next", broken=True))
    for _ in range(RULE.min_stable - 1):  # the stable's sample after, at the other
        await _ended([b], timelines, session("stable"))
    assert await a.weights() == {"stable": 90, "next": 10}
    await _ended([b], timelines, session("stable"))  # the stable's minimum: no canary session follows
    assert await a.weights() == {"stable": 100, "next": 0}
    assert [(kind, hook["release"]) for _, kind, hook in a.pushed + b.pushed] == [("release.rolled_back", "next")]
    history = await a.releases.history(5)
    assert [line["by"] for line in history].count("automatic rollback") == 1


async def test_a_replica_that_starts_acts_on_a_breach_in_the_sample_it_reads_back(
        replica_pair: tuple[RedisCoordination, RedisCoordination], tmp_path: Path) -> None:
    timelines: dict[str, Timeline] = {}
    a = Replica(replica_pair[0], tmp_path, timelines)
    for _ in range(RULE.min_canary):
        await _ended([a], timelines, session("next", broken=True))
    for _ in range(RULE.min_stable):  # recorded by a replica that stopped before it could judge
        session_id = next(ids)
        recorded = await a.watch.sample.add(session_id, outcome_of(session("stable")))
        assert recorded
    assert await a.weights() == {"stable": 90, "next": 10}
    b = Replica(replica_pair[1], tmp_path, timelines)  # started now, its memory empty
    await b.releases.refresh()
    looking = asyncio.create_task(b.watch.run())
    try:
        await asyncio.wait_for(_until_weight(b, "next", 0), timeout=2.0)  # its first look, not a session's end
        # The watch tells the rollback once the store has taken it: the weight can be read back first.
        await asyncio.wait_for(_until_pushed(b), timeout=2.0)
    finally:
        looking.cancel()
    assert [kind for _, kind, _ in b.pushed] == ["release.rolled_back"]


async def test_an_operator_who_gives_traffic_to_a_canary_its_sample_condemns_sees_it_rolled_back_at_once(
        replica_pair: tuple[RedisCoordination, RedisCoordination], tmp_path: Path) -> None:
    timelines: dict[str, Timeline] = {}
    a, b = (Replica(c, tmp_path, timelines) for c in replica_pair)
    await a.releases.change(lambda t, v: t.with_weight("next", 0, "ops", v))
    for _ in range(RULE.min_stable):
        await _ended([a], timelines, session("stable"))
    for _ in range(RULE.min_canary):  # a tester's sessions (its key's release), the canary at 0
        await _ended([a], timelines, session("next", broken=True))
    await b.releases.change(lambda t, v: t.with_weight("next", 50, "ops", v))
    await b.watch.settled()
    assert await a.weights() == {"stable": 100, "next": 0}


async def _until_weight(replica: Replica, release: str, weight: int) -> None:
    while (await replica.weights()).get(release) != weight:
        await asyncio.sleep(0.05)


async def _until_pushed(replica: Replica) -> None:
    while not replica.pushed:
        await asyncio.sleep(0.05)
