"""Automatic rollback: each session's timeline becomes one outcome for its release's health
(dispatcher/releases/health.py), and a canary whose callers fare worse than the stable release's
is set to weight 0, with the reason in `GET /releases`, a `release.rolled_back` webhook and a log line.

A session is judged once, when its timeline ends (its bot's `ended` report, the start's `failed`,
or its machine's end as the provider showed it, `machine_ended`: sessions/machine_ends.py), from
the whole timeline (read from the store with several replicas: the start and the bot's reports may
be recorded at two replicas). Its outcome goes into the deployment's sample (release_sample.py),
once whichever replicas see its end, and the replica that recorded it judges the canary on every
replica's sessions; the rollback itself is one compare-and-write on the deployment's traffic.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dispatcher.releases.health import Health
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.traffic import Traffic
from dispatcher.sessions.machine_ends import EVENT as MACHINE_ENDED
from dispatcher.sessions.release_outcome import outcome_of
from dispatcher.sessions.release_sample import SharedSample

log = logging.getLogger("dispatcher.releases.watch")

AUTOMATIC = "automatic rollback"
# A session's end: its bot's report, its start's failure, or its machine's end as the provider showed it
# (machine_ends.py: a machine that died before its bot could report leaves only that).
TERMINAL = ("ended", "failed", MACHINE_ENDED)
JUDGED_KEPT = 10_000  # sessions already judged, remembered so that a second terminal event is not a second outcome
# A machine seen ended while its bot was up (it reported `ready`) but had not said why: its own `ended`
# report, on its channel, may be a moment behind the provider's word, and says more (a caller who left).
REPORT_GRACE_SECONDS = 2.0
Reader = Callable[[str], Awaitable[list[dict[str, Any]]]]
Push = Callable[[str, str, dict[str, Any]], None]


class ReleaseWatch:
    def __init__(self, releases: LiveReleases, sample: SharedSample, read: Reader, push: Push | None = None,
                 *, act: bool = True) -> None:
        self._releases = releases
        self._act = act  # RELEASE_AUTO_ROLLBACK=off: a breach is shown and logged, traffic left alone
        self.sample = sample
        self.health = sample.health
        self._read = read  # a session's whole timeline
        self._push = push  # the lifecycle webhooks' outbox, if any
        self._judged: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
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
        return {"state": health.state, "reason": health.reason}

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
            outcome = outcome_of(events)
            if outcome is None or not await self.sample.add(session_id, outcome):
                return  # no release of its own to speak for, or judged already (here or at another replica)
            traffic = self._releases.traffic
            if outcome.release == traffic.stable or traffic.weights.get(outcome.release, 0) == 0:
                return
            await self.sample.catch_up(outcome.release, traffic.stable)
        except Exception as exc:  # the store: this session goes unjudged, never wrongly judged
            log.warning("session %s: not judged for its release (%s)", session_id, type(exc).__name__)
            return
        breach = self.health.verdict(outcome.release, traffic.stable)
        if breach is not None and self._act:
            await self._roll_back(outcome.release, breach.reason)
        elif breach is not None:
            log.warning("release %s breached (%s); RELEASE_AUTO_ROLLBACK=off leaves its traffic", outcome.release,
                        breach.reason)

    async def _timeline(self, session_id: str, last: dict[str, Any]) -> list[dict[str, Any]]:
        events = await self._read(session_id)
        if not any(e.get("event") == last.get("event") and e.get("at") == last.get("at") for e in events):
            events = [*events, last]
        return events

    async def _roll_back(self, release: str, reason: str) -> None:
        try:
            traffic = await self._releases.change(lambda t, v: t.breached(release, reason, v))
        except Exception as exc:  # the store: its breach stands, so the canary's next session tries again
            log.error("release %s breached (%s) but could not be rolled back: %s", release, reason, exc)
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
        for name in judged_afresh(before, traffic, self.health.breached):
            self._spawn(self._restart(name, traffic.version[0] / 1000))

    async def _restart(self, release: str, since: float) -> None:
        try:
            await self.sample.restart(release, since)
        except Exception as exc:  # restarted here; every other replica restarts it on the same change
            log.warning("release %s: judged afresh here, the store not told (%s)", release, type(exc).__name__)


def judged_afresh(before: Traffic, after: Traffic, breached: Callable[[str], bool]) -> list[str]:
    """The releases whose sample a traffic change restarts: a rolled-back release an operator gives
    traffic again, and a breached one (with RELEASE_AUTO_ROLLBACK=off) whose weight an operator moves.
    Never the stable release, never a healthy canary whose weight moves, never by the rollback itself."""
    if after.changed_by == AUTOMATIC:
        return []
    return [name for name, weight in after.weights.items()
            if (name in before.held and name not in after.held)
            or (breached(name) and before.weights.get(name) != weight)]


def _bot_up_unheard(events: list[dict[str, Any]]) -> bool:
    kinds = {e.get("event") for e in events}
    return "ready" in kinds and "ended" not in kinds
