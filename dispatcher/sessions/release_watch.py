"""Automatic rollback: each session's timeline becomes one outcome for its release's health
(dispatcher/releases/health.py), and a canary whose callers fare worse than the stable release's
is set to weight 0, with the reason in `GET /releases`, a `release.rolled_back` webhook and a log line.

A session is judged once, when its timeline ends (its bot's `ended` report, the start's `failed`,
its machine's end as the provider showed it, `machine_ended`: sessions/machine_ends.py, or its
caller's stop, `stop_requested`, once its bot's report comes or a minute has passed without it), from
the whole timeline (read from the store with several replicas: the start and the bot's reports may
be recorded at two replicas). Its outcome goes into the deployment's sample (release_sample.py),
once whichever replicas see its end.

A verdict can change whenever either side of the comparison does, so every canary taking traffic is
judged (`judge`, the one place a breach is acted on) when a session of any release is recorded here,
when an operator's change (or another replica's) is read, at start-up on the sample read back, and
once a second on what other replicas recorded: a canary whose breach the stable release's sample
completes is rolled back then, not at its own next session. The rollback itself is one
compare-and-write on the deployment's traffic: whichever replica writes it logs and sends it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dispatcher.releases.health import Health
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.traffic import Traffic, Version
from dispatcher.sessions.machine_ends import EVENT as MACHINE_ENDED
from dispatcher.sessions.release_outcome import outcome_of
from dispatcher.sessions.release_sample import SharedSample

log = logging.getLogger("dispatcher.releases.watch")

AUTOMATIC = "automatic rollback"
# A session's end: its bot's report, its start's failure, or its machine's end as the provider showed it
# (machine_ends.py: a machine that died before its bot could report leaves only that).
# A caller's stop ends it too: its bot's report of that end may never come (a bot killed at its provider's
# grace, stuck on the signal, its link dropped), and a judge waiting on it alone would count the failures
# bots report and miss the good sessions callers hung up, a sample skewed by how sessions end.
TERMINAL = ("ended", "failed", MACHINE_ENDED, "stop_requested")
JUDGED_KEPT = 10_000  # sessions already judged, remembered so that a second terminal event is not a second outcome
# A machine seen ended while its bot was up (it reported `ready`) but had not said why: its bot's own
# `ended` report, on its channel, may be a moment behind, and says more (a caller who left, the
# conversation's figures).
REPORT_GRACE_SECONDS = 2.0
# A caller's stop before the bot's word: its report (a failure, the conversation's figures) can come many
# seconds later (a bot slow to tear down, a provider whose stop returns at once), and a bare stop judged
# first would hide it. Looked for at these times after the stop, spaced so that a burst of stops costs a
# few reads each; the bare stop is judged after the last.
STOPPED_LOOKS_SECONDS = (2.0, 5.0, 10.0, 30.0, 60.0)
# How often each replica judges on the sessions other replicas recorded (as often as it reads the traffic:
# a breach completed anywhere is acted on within it, and seen everywhere within the traffic's next read).
JUDGE_SECONDS = 1.0
# A bot that ended on a signal was told to stop: by its caller, whose stop is written down only once the
# machine is stopped (its bot's report comes first), or by its provider. Its judgement waits for the
# stop's word or the machine's end, looked for this often and this long.
STOP_LOOK_SECONDS, STOP_WAIT_SECONDS = 0.5, 60.0
Reader = Callable[[str], Awaitable[list[dict[str, Any]]]]
Push = Callable[[str, str, dict[str, Any]], None]


class ReleaseWatch:
    def __init__(self, releases: LiveReleases, sample: SharedSample, read: Reader, push: Push | None = None,
                 *, act: bool = True, cold_start: Callable[[], float] | None = None) -> None:
        """`cold_start`: within how long a cold start is ready 9 times in 10 (sessions/ready_estimate.py):
        a caller's wait on a cold start is bounded by it while the stable release has too few cold
        starts of its own to say."""
        self._releases = releases
        self._cold_start = cold_start
        self._act = act  # RELEASE_AUTO_ROLLBACK=off: a breach is shown and logged, traffic left alone
        self.sample = sample
        self.health = sample.health
        self._read = read  # a session's whole timeline
        self._push = push  # the lifecycle webhooks' outbox, if any
        self._judged: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._afresh: set[str] = set()  # given traffic again by an operator: not judged until restarted
        self._warned: set[str] = set()  # RELEASE_AUTO_ROLLBACK=off: breaches logged already
        self._unread = False  # the store did not answer the last look (said once, not every second)
        self._traffic = releases.traffic
        releases.listeners.append(self._traffic_changed)

    def timeline_event(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A timeline listener: a session's terminal event has it judged, in the background."""
        if record.get("event") not in TERMINAL or session_id in self._judged:
            return
        self._judged[session_id] = None
        while len(self._judged) > JUDGED_KEPT:
            self._judged.popitem(last=False)
        self._spawn(self._judge(session_id, dict(record)))

    async def view(self, release: str, traffic: Traffic) -> dict[str, Any]:
        """A release's health as `GET /releases` shows it, on the deployment's sample."""
        if release in traffic.held:
            return {"state": "breached", "reason": traffic.held[release]}
        try:
            await self.sample.catch_up(release, traffic.stable)
        except Exception as exc:  # the store: shown on the sample copied here last
            log.warning("release %s: its health shown without the store's newest sessions (%s)", release,
                        type(exc).__name__)
        health: Health = self.health.health(release, traffic.stable)
        if health.state == "breached" and self._act and release in live_canaries(traffic):
            self._spawn(self.judge())  # found here first: acted on now, not at the next look
        return {"state": health.state, "reason": health.reason}

    async def run(self) -> None:
        """Judges on the sample read back at start-up, then once a second on what other replicas recorded."""
        while True:
            try:
                await self.judge()
            except Exception:  # a fault of ours: said, and the next look tries again
                log.exception("judging the releases failed")
            await asyncio.sleep(JUDGE_SECONDS)

    async def judge(self) -> None:
        """Judge and act: every canary taking traffic, on the deployment's newest sample; a breach is
        rolled back (RELEASE_AUTO_ROLLBACK=off: logged once). Called wherever a verdict can change."""
        stable = self._releases.traffic.stable
        canaries = live_canaries(self._releases.traffic) - self._afresh
        if not canaries:
            return
        try:
            await self.sample.catch_up(stable, *sorted(canaries))
        except Exception as exc:  # the store: judged at the next look, on the sample copied then
            if not self._unread:
                log.warning("releases not judged: the store's sample could not be read (%s)", type(exc).__name__)
            self._unread = True
            return
        self._unread = False
        traffic = self._releases.traffic  # as it is now: a change read meanwhile is judged on its own
        if traffic.stable != stable:
            return
        for name in sorted(canaries & live_canaries(traffic) - self._afresh):
            breach = self.health.verdict(name, stable)
            if breach is None:
                continue
            if self._act:
                await self._roll_back(name, breach.reason)
            elif name not in self._warned:
                self._warned.add(name)
                log.warning("release %s breached (%s); RELEASE_AUTO_ROLLBACK=off leaves its traffic", name,
                            breach.reason)

    async def settled(self) -> None:
        while self._tasks:
            await asyncio.wait(set(self._tasks))

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            await work
        try:
            task = asyncio.get_running_loop().create_task(run())
        except RuntimeError:
            if asyncio.iscoroutine(work):
                work.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _judge(self, session_id: str, last: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # the terminal event's own write was started first: let it run
        try:
            events = await self._timeline(session_id, last)
            if last.get("event") == MACHINE_ENDED and _bot_up_unheard(events):
                await asyncio.sleep(REPORT_GRACE_SECONDS)
                events = await self._timeline(session_id, last)
            if last.get("event") == "stop_requested":
                events = await self._after_stop(session_id, last, events)
            waited = 0.0
            while _told_to_stop_unheard(events) and waited < STOP_WAIT_SECONDS:
                await asyncio.sleep(STOP_LOOK_SECONDS)
                waited += STOP_LOOK_SECONDS
                events = await self._timeline(session_id, last)
            stable = self._releases.traffic.stable
            await self.sample.catch_up(stable)  # its newest time to ready bounds a caller's wait
            warm = any(e.get("event") == "claimed" for e in events)  # the reserve served its start
            cold_start = self._cold_start() if self._cold_start is not None else None
            bound = self.health.stopped_waiting_bound(stable, warm=warm, cold_start=cold_start)
            outcome = outcome_of(events, gave_up_after=bound)
            if outcome is None or not await self.sample.add(session_id, outcome):
                return  # no release of its own to speak for, or judged already (here or at another replica)
        except Exception as exc:  # the store: this session goes unjudged, never wrongly judged
            log.warning("session %s: not judged for its release (%s)", session_id, type(exc).__name__)
            return
        # A stable session can complete a canary's breach as well as a canary's own session can.
        await self.judge()

    async def _after_stop(self, session_id: str, last: dict[str, Any],
                          events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A stopped session's timeline once its bot's report is in it, or the last of
        STOPPED_LOOKS_SECONDS has passed without it. Its machine's end is not the bot's word: the
        judge drops it under a stop of a running machine, and the bot's report (a failure, its
        figures) may land a moment after it (a local process's exit is told before its stop
        returns), so it is looked for once more, REPORT_GRACE_SECONDS on."""
        looked = 0.0
        looks = iter(STOPPED_LOOKS_SECONDS)
        while not _reported(events):
            if any(e.get("event") == MACHINE_ENDED for e in events):
                await asyncio.sleep(REPORT_GRACE_SECONDS)
                return await self._timeline(session_id, last)
            look = next(looks, None)
            if look is None:
                break
            await asyncio.sleep(look - looked)
            looked = look
            events = await self._timeline(session_id, last)
        return events

    async def _timeline(self, session_id: str, last: dict[str, Any]) -> list[dict[str, Any]]:
        events = await self._read(session_id)
        if not any(e.get("event") == last.get("event") and e.get("at") == last.get("at") for e in events):
            events = [*events, last]
        return events

    async def _roll_back(self, release: str, reason: str) -> None:
        acted = False

        def breached(current: Traffic, version: Version) -> Traffic:
            nonlocal acted
            after = current.breached(release, reason, version)
            acted = after is not current  # else rolled back already (by another replica, or a look here)
            return after

        try:
            traffic = await self._releases.change(breached)
        except Exception as exc:  # the store: its breach stands, so the next look tries again
            log.error("release %s breached (%s) but could not be rolled back: %s", release, reason, exc)
            return
        if not acted:
            return
        log.warning("release %s rolled back automatically: %s; %s now takes its traffic", release, reason,
                    traffic.stable)
        if self._push is not None:
            self._push(f"msg_release_{release}_{traffic.version[0]}", "release.rolled_back",
                       {"release": release, "reason": reason, "stable": traffic.stable,
                        "weights": dict(traffic.weights), "at": traffic.version[0] / 1000})

    def _traffic_changed(self, traffic: Traffic) -> None:
        """An operator who gives a breached release traffic again has it judged afresh, on its sessions
        from then on: a rollback never undoes itself, and the release's old failures do not roll it back
        again at once. Any other change keeps every sample: a release is immutable, so its sessions
        speak for it whatever its weight, and the stable release's sample is what a canary needs."""
        before, self._traffic = self._traffic, traffic
        afresh = judged_afresh(before, traffic, self.health.breached)
        self._afresh.update(afresh)  # its old breach is not acted on again before its sample restarts
        self._warned.difference_update(afresh)
        self._spawn(self._changed(afresh, traffic.version[0] / 1000))

    async def _changed(self, afresh: list[str], since: float) -> None:
        """The releases judged afresh restarted, then every canary judged on the new traffic."""
        for release in afresh:
            try:
                await self.sample.restart(release, since)
            except Exception as exc:  # restarted here; every other replica restarts it on the same change
                log.warning("release %s: judged afresh here, the store not told (%s)", release, type(exc).__name__)
            self._afresh.discard(release)
        await self.judge()


def judged_afresh(before: Traffic, after: Traffic, breached: Callable[[str], bool]) -> list[str]:
    """The releases whose sample a traffic change restarts: a rolled-back release an operator gives
    traffic again, and a breached one (with RELEASE_AUTO_ROLLBACK=off) whose weight an operator moves.
    Never the stable release, never a healthy canary whose weight moves, never by the rollback itself."""
    if after.changed_by == AUTOMATIC:
        return []
    return [name for name, weight in after.weights.items()
            if (name in before.held and name not in after.held)
            or (breached(name) and before.weights.get(name) != weight)]


def live_canaries(traffic: Traffic) -> set[str]:
    """The releases a breach would be acted on for: taking traffic, other than the stable release."""
    return {name for name, weight in traffic.weights.items() if weight > 0 and name != traffic.stable}


def _told_to_stop_unheard(events: list[dict[str, Any]]) -> bool:
    """The bot ended on a signal, and neither a stop nor the machine's end is written down yet."""
    kinds = {e.get("event") for e in events}
    signalled = any(e.get("event") == "ended" and e.get("reason") == "signal" for e in events)
    return signalled and "stop_requested" not in kinds and MACHINE_ENDED not in kinds


def _reported(events: list[dict[str, Any]]) -> bool:
    """Its bot's report of its end, or its start's failure, is written down."""
    return bool({e.get("event") for e in events} & {"ended", "failed"})


def _bot_up_unheard(events: list[dict[str, Any]]) -> bool:
    kinds = {e.get("event") for e in events}
    return "ready" in kinds and "ended" not in kinds
