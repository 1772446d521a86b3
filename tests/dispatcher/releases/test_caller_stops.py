"""Sessions their callers stop, as the release watch judges them (the real watch, judge, traffic and
sample): the caller's stop ends the session for the judge, whether or not its bot's own `ended`
report ever comes (a bot killed at its provider's grace, stuck on the signal, its link dropped). A
judge that waited on that report alone counted the failures bots report and missed the good sessions
callers hung up: a failing canary stayed `watching` against a stable release whose ended sessions it
never saw ("stable: 0 of 100"), and whoever holds the traffic could sink or keep a canary by how its
sessions end. A report that comes after the stop is still the one judged (its failure, its figures),
however many seconds the bot takes to tear down, at whichever replica it lands."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dispatcher.releases.catalogue import Catalogue
from dispatcher.releases.health import ReleaseHealth
from dispatcher.releases.live import LiveReleases
from dispatcher.sessions import release_watch
from dispatcher.sessions.release_sample import SharedSample
from dispatcher.sessions.release_watch import ReleaseWatch
from dispatcher.store.release_book import MemoryReleaseBook
from dispatcher.store.release_samples import MemoryReleaseSamples
from tests.support.releases import release_env

Timeline = list[dict[str, Any]]
FIGURES = {"caller_turns": 3, "unanswered": 0, "bot_turns": 4, "cut_off": 0, "latencies": [0.7, 0.8, 0.9],
           "left_in_first_turn": False}


def _stopped(release: str, at: float = 1000.0) -> Timeline:
    """A session drawn for `release`, warm and ready, stopped by its caller a minute in: its bot's
    report of that end never came."""
    return [{"event": "requested", "at": at, "release": release, "release_chosen_by": "weight"},
            {"event": "claimed", "at": at + 0.1}, {"event": "ready", "at": at + 0.6},
            {"event": "joined", "at": at + 1.0}, {"event": "stop_requested", "at": at + 60.0}]


def _failed(at: float = 1000.0) -> Timeline:
    """A canary session whose bot() raised: its bot's report came."""
    return [{"event": "requested", "at": at, "release": "next", "release_chosen_by": "weight"},
            {"event": "claimed", "at": at + 0.1}, {"event": "error", "at": at + 0.3},
            {"event": "ended", "at": at + 0.4, "reason": "bot_failed"}]


async def _watch(tmp_path: Path, read: Any, samples: MemoryReleaseSamples | None = None,
                 ) -> tuple[ReleaseWatch, LiveReleases, MemoryReleaseSamples]:
    """A replica's watch; `samples`: the store's samples, shared with other replicas."""
    releases = LiveReleases(Catalogue.from_env(release_env(tmp_path, "stable=50,next=50"), local=True),
                            MemoryReleaseBook())
    await releases.refresh()
    samples = MemoryReleaseSamples() if samples is None else samples
    return ReleaseWatch(releases, SharedSample(ReleaseHealth(), samples), read), releases, samples


@pytest.fixture(autouse=True)
def _short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release_watch, "REPORT_GRACE_SECONDS", 0.01)  # the bot's report, waited for a moment
    monkeypatch.setattr(release_watch, "STOPPED_LOOKS_SECONDS", (0.01,))


async def test_sessions_their_callers_stopped_are_judged_and_a_failing_canary_is_rolled_back(tmp_path: Path) -> None:
    timelines = {f"stable-{n}": _stopped("stable", 1000.0 + n) for n in range(120)}
    timelines |= {f"next-{n}": _failed(1000.0 + n) for n in range(30)}

    async def read(session_id: str) -> Timeline:
        return timelines[session_id]

    watch, releases, samples = await _watch(tmp_path, read)
    for session_id, events in timelines.items():
        watch.timeline_event(session_id, events[-1])
        await watch.settled()
    stable = [entry for _, entry in (await samples.read("stable", 0)).entries]
    assert len(stable) == 120 and all(entry[1] is None and round(entry[2], 3) == 0.6 for entry in stable)
    assert releases.traffic.weights["next"] == 0  # at its 20th failure, the rule's minimum sample
    assert releases.traffic.held["next"] == "20 of 20 sessions failed (20 bot error) (stable: 0 of 120)"


async def test_a_bots_report_that_follows_its_callers_stop_within_a_moment_is_the_one_judged(
        tmp_path: Path) -> None:
    stopped = _stopped("next")
    reported = [*stopped, {"event": "ended", "at": 1060.2, "reason": "signal", "conversation": FIGURES}]
    reads = [stopped, reported]  # the stop's own write first; the bot's report a moment later

    async def read(session_id: str) -> Timeline:
        return reads.pop(0) if len(reads) > 1 else reads[0]

    watch, _, samples = await _watch(tmp_path, read)
    watch.timeline_event("s", stopped[-1])
    await watch.settled()
    watch.timeline_event("s", reported[-1])  # judged once: at the stop, with its bot's report
    await watch.settled()
    [(_, entry)] = (await samples.read("next", 0)).entries
    assert entry[1] is None and entry[4] is not None  # a good session, the conversation's figures kept


@pytest.mark.parametrize(("replicas", "machine_ended"), [(1, False), (2, False), (1, True)])
async def test_a_bots_failure_reported_seconds_after_its_callers_stop_is_judged_a_failure(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replicas: int, machine_ended: bool) -> None:
    """A canary's bot() raised; its caller's client stopped the session as the peer dropped, and the
    bot's `ended bot_failed` report, sent after a slow teardown, lands well after the first look
    (scaled: looks at 0.2, 0.5, 1, 3, 6 s; the report 0.5 s after the stop), at this replica or another.
    `machine_ended`: the machine's end is written at once after the stop (a local process's exit is
    told before its stop returns: sessions/machine_ends.py). It is not the bot's word (the judge
    drops it under the stop of a running machine): the report is looked for a moment's grace past it."""
    monkeypatch.setattr(release_watch, "REPORT_GRACE_SECONDS", 1.0)
    monkeypatch.setattr(release_watch, "STOPPED_LOOKS_SECONDS", (0.2, 0.5, 1.0, 3.0, 6.0))
    timeline = _stopped("next")[:-1]

    async def read(session_id: str) -> Timeline:
        return list(timeline)

    stopping, _, samples = await _watch(tmp_path, read)
    reporting = stopping if replicas == 1 else (await _watch(tmp_path, read, samples))[0]
    stop = {"event": "stop_requested", "at": 1030.0, "machine_running": True}
    timeline.append(stop)
    if machine_ended:
        timeline.append({"event": "machine_ended", "at": 1030.05, "state": "ended", "detail": None})
    stopping.timeline_event("s", stop)
    await asyncio.sleep(0.5)
    ended = {"event": "ended", "at": 1030.9, "reason": "bot_failed", "exit_code": 4, "detail": "bot.py: boom"}
    timeline.append(ended)
    reporting.timeline_event("s", ended)
    await stopping.settled()
    await reporting.settled()
    [(_, entry)] = (await samples.read("next", 0)).entries
    assert entry[1] == "bot error"


async def test_a_canary_crash_its_caller_stopped_afterwards_is_judged_a_bot_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A canary's bot crashed (no report; the provider shows the machine failed, exit code 1) and its
    caller's client stopped the session 2 s later, as every client does when the call goes dead. The
    machine's end is judged first (a moment's grace for the bot's report, its bot was up), and the
    stop, of a machine that no longer ran, lands within that grace."""
    monkeypatch.setattr(release_watch, "REPORT_GRACE_SECONDS", 0.05)
    timeline: Timeline = [{"event": "requested", "at": 1000.0, "release": "next", "release_chosen_by": "weight"},
                          {"event": "launched", "at": 1000.5}, {"event": "ready", "at": 1004.0},
                          {"event": "joined", "at": 1005.0},
                          {"event": "machine_ended", "at": 1020.0, "state": "failed", "detail": "exit code 1"}]

    async def read(session_id: str) -> Timeline:
        return list(timeline)

    watch, _, samples = await _watch(tmp_path, read)
    watch.timeline_event("s", timeline[-1])
    await asyncio.sleep(0.01)
    stop = {"event": "stop_requested", "at": 1022.0, "machine_running": False}
    timeline.append(stop)
    watch.timeline_event("s", stop)  # the client's clean-up DELETE
    await watch.settled()
    [(_, entry)] = (await samples.read("next", 0)).entries
    assert entry[1] == "bot error"
