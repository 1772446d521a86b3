"""Automatic rollback: each session's timeline becomes one outcome for its release's health
(dispatcher/releases/health.py), and a canary whose callers fare worse than the stable release's
is set to weight 0, with the reason in `GET /releases`, a `release.rolled_back` webhook and a log line.

A session is judged once, when its timeline ends (its bot's `ended` report, or the start's
`failed`), from the whole timeline (read from the store with several replicas: the start and the
bot's reports may be recorded at two replicas). Each replica judges the sessions whose end it sees;
the rollback itself is one compare-and-write on the deployment's traffic, so replicas agree.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dispatcher.releases.health import Health, ReleaseHealth, SessionOutcome
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.traffic import DEPLOYMENT, Traffic

log = logging.getLogger("dispatcher.releases.watch")

AUTOMATIC = "automatic rollback"
JUDGED_KEPT = 10_000  # sessions already judged, remembered so that a second terminal event is not a second outcome
Reader = Callable[[str], Awaitable[list[dict[str, Any]]]]
Push = Callable[[str, str, dict[str, Any]], None]


class ReleaseWatch:
    def __init__(self, releases: LiveReleases, health: ReleaseHealth, read: Reader, push: Push | None = None,
                 *, act: bool = True) -> None:
        self._releases = releases
        self._act = act  # RELEASE_AUTO_ROLLBACK=off: a breach is shown and logged, traffic left alone
        self.health = health
        self._read = read  # a session's whole timeline
        self._push = push  # the lifecycle webhooks' outbox, if any
        self._judged: OrderedDict[str, None] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._traffic = releases.traffic
        releases.listeners.append(self._traffic_changed)

    def timeline_event(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A timeline listener: a session's terminal event has it judged, in the background."""
        if record.get("event") not in ("ended", "failed") or session_id in self._judged:
            return
        self._judged[session_id] = None
        while len(self._judged) > JUDGED_KEPT:
            self._judged.popitem(last=False)
        try:
            task = asyncio.get_running_loop().create_task(self._judge(session_id, dict(record)))
        except RuntimeError:
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def view(self, release: str, traffic: Traffic) -> dict[str, Any]:
        """A release's health as `GET /releases` shows it."""
        if release in traffic.held:
            return {"state": "breached", "reason": traffic.held[release]}
        health: Health = self.health.health(release, traffic.stable)
        return {"state": health.state, "reason": health.reason}

    async def settled(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def _judge(self, session_id: str, last: dict[str, Any]) -> None:
        await asyncio.sleep(0)  # the terminal event's own write was started first: let it run
        try:
            events = await self._read(session_id)
        except Exception as exc:  # the store: this session goes unjudged, never wrongly judged
            log.warning("session %s: not judged for its release (%s)", session_id, type(exc).__name__)
            return
        if not any(e.get("event") == last.get("event") and e.get("at") == last.get("at") for e in events):
            events = [*events, last]
        outcome = outcome_of(events)
        if outcome is None:
            return
        self.health.observe(outcome)
        traffic = self._releases.traffic
        if outcome.release == traffic.stable or traffic.weights.get(outcome.release, 0) == 0:
            return
        breach = self.health.verdict(outcome.release, traffic.stable)
        if breach is not None and self._act:
            await self._roll_back(outcome.release, breach.reason)
        elif breach is not None:
            log.warning("release %s breached (%s); RELEASE_AUTO_ROLLBACK=off leaves its traffic", outcome.release,
                        breach.reason)

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
        """An operator's change to a release judges it afresh: a rollback never undoes itself, and a
        release given traffic again is judged on its new sessions only."""
        before, self._traffic = self._traffic, traffic
        if traffic.changed_by in (AUTOMATIC, DEPLOYMENT):
            return
        for name, weight in traffic.weights.items():
            if before.weights.get(name) != weight:
                self.health.reset(name)


def outcome_of(events: list[dict[str, Any]]) -> SessionOutcome | None:
    """One session's outcome from its timeline; None when it names no release (a start refused
    before it was a session, or one older than releases) or its caller pinned it: only sessions the
    dispatcher gave a release (by weight, or by the key's configured release) speak for it."""
    requested = next((e for e in events if e.get("event") == "requested"), None)
    if requested is None or not isinstance(requested.get("release"), str):
        return None
    if requested.get("release_chosen_by") == "pinned":  # a client could pin sessions to sink a canary (or hide one)
        return None
    began = float(requested["at"])
    at = {e["event"]: float(e["at"]) for e in reversed(events) if isinstance(e.get("at"), int | float)}
    launched = "launched" in at or "claimed" in at
    failed_start = "failed" in at and not launched
    errored = "error" in at or ("failed" in at and launched) or _ended_badly(events)
    joined = at.get("joined")
    return SessionOutcome(
        release=requested["release"],
        failed_start=failed_start,
        bot_error=errored,
        ready_seconds=at["ready"] - began if "ready" in at else None,
        ended_within_seconds=(at["ended"] - (joined if joined is not None else began)) if "ended" in at else None,
        first_audio_seconds=at["first_audio"] - joined if "first_audio" in at and joined is not None else None,
    )


# The bot host's own end reasons for a failure of the bot (bot/lifecycle.py): a caller who hung up or
# never connected is no fault of the release, and happens to every release alike.
BOT_FAULTS = ("error", "bot_failed", "config_error")


def _ended_badly(events: list[dict[str, Any]]) -> bool:
    return any(e.get("event") == "ended" and e.get("reason") in BOT_FAULTS for e in events)
