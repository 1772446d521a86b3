"""Smoke sessions' verdicts (docs/releases.md, "Smoke session"): each live smoke session is decided
from its machine's own reports (smoke_verdict.py) as they arrive, or at its deadline, and the
verdict is written into the release's smoke state with the traffic's compare-and-write, so that
whichever replica sees the bot's report decides, once. A pass lets the release take its canary
share; it is logged, audited and sent as a `release.smoke_passed` lifecycle webhook (a failure as
`release.smoke_failed`). A failed smoke is never retried by the dispatcher: an operator asks again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from dispatcher.releases.live import LiveReleases
from dispatcher.releases.traffic import Traffic
from dispatcher.sessions.machine_ends import EVENT as MACHINE_ENDED
from dispatcher.sessions.smoke_verdict import Verdict, verdict_of
from voicefleet_settings.read import setting_float

log = logging.getLogger("dispatcher.releases.smoke")

DEFAULT_DEADLINE_SECONDS = 120.0
DECISIVE = ("joined", "first_audio", "error", "ended", "failed", MACHINE_ENDED)  # the events a verdict can follow
Reader = Callable[[str], Awaitable[list[dict[str, Any]]]]
Push = Callable[[str, str, dict[str, Any]], None]
Stop = Callable[[str], Awaitable[object]]


def smoke_deadline(env: Mapping[str, str]) -> float:
    """`RELEASE_SMOKE_DEADLINE_SECONDS`: how long a smoke session has to answer its caller with audio."""
    return setting_float(env, "RELEASE_SMOKE_DEADLINE_SECONDS")


class SmokeWatch:
    def __init__(self, releases: LiveReleases, read: Reader, push: Push | None = None, *,
                 deadline_seconds: float = DEFAULT_DEADLINE_SECONDS, clock: Callable[[], float] = time.time) -> None:
        self._releases = releases
        self._read = read  # a session's whole timeline (the store's, with several replicas)
        self._push = push
        self.deadline_seconds = deadline_seconds
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    def release_of(self, session_id: str, traffic: Traffic | None = None) -> str | None:
        """The release whose running smoke session this is, if any."""
        smoke = (traffic or self._releases.traffic).smoke
        return next((n for n, s in smoke.items() if s.status == "running" and s.session_id == session_id), None)

    def timeline_event(self, session_id: str, record: Mapping[str, Any]) -> None:
        """A timeline listener: a smoke session's decisive report has it decided, in the background."""
        if record.get("event") in DECISIVE and self.release_of(session_id) is not None:
            self._spawn(self._decide(session_id, dict(record)))

    def watch(self, session_id: str, stop: Stop) -> None:
        """The replica that started the smoke session holds its deadline: undecided then, it failed
        (and its machine is stopped)."""
        async def deadline() -> None:
            await asyncio.sleep(self.deadline_seconds)
            if await self._decide(session_id, None, overdue=True):
                try:
                    await stop(session_id)
                except Exception as exc:  # the reaper ends it at the session cap
                    log.warning("smoke session %s: not stopped after its deadline (%s)", session_id, exc)
        self._spawn(deadline())

    async def failed_to_start(self, session_id: str, reason: str) -> None:
        await self._settle(session_id, Verdict(False, f"the session did not start: {reason}"))

    async def settled(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _spawn(self, work: Awaitable[Any]) -> None:
        async def run() -> None:
            await work
        try:
            task = asyncio.get_running_loop().create_task(run())
        except RuntimeError:
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _decide(self, session_id: str, last: dict[str, Any] | None, *, overdue: bool = False) -> bool:
        """Reads the session's timeline and settles it when it is decided. True when this call decided."""
        await asyncio.sleep(0)  # the event's own write was started first: let it run
        try:
            events = await self._read(session_id)
        except Exception as exc:  # the store: a later report, or the deadline, decides instead
            log.warning("smoke session %s: timeline not read (%s)", session_id, type(exc).__name__)
            events = []
        if last is not None and not any(e.get("event") == last.get("event") and e.get("at") == last.get("at")
                                        for e in events):
            events = sorted([*events, last], key=lambda e: float(e.get("at", 0)))
        verdict = verdict_of(events, overdue_after=self.deadline_seconds if overdue else None)
        return verdict is not None and await self._settle(session_id, verdict)

    async def _settle(self, session_id: str, verdict: Verdict) -> bool:
        decided: list[str] = []

        def ended(traffic: Traffic, version: tuple[int, str]) -> Traffic:
            decided.clear()
            name = self.release_of(session_id, traffic)
            if name is None:
                return traffic  # decided already (here or at another replica)
            decided.append(name)
            return traffic.smoke_ended(name, session_id, None if verdict.passed else verdict.reason, self._clock(),
                                       version)

        try:
            traffic = await self._releases.change(ended)
        except Exception as exc:  # the store: a later report, or the deadline, decides again
            log.error("smoke session %s: verdict (%s) not recorded: %s", session_id, verdict.reason, exc)
            return False
        if not decided:
            return False
        name = decided[0]
        at = traffic.version[0] / 1000
        if verdict.passed:
            log.info("release %s passed its smoke session %s; it now takes %d%% of the traffic", name, session_id,
                     traffic.weights.get(name, 0))
            self._send(name, "release.smoke_passed", {"release": name, "session_id": session_id,
                                                      "weights": dict(traffic.weights), "at": at})
        else:
            log.warning("release %s failed its smoke session %s: %s; it takes no traffic", name, session_id,
                        verdict.reason)
            self._send(name, "release.smoke_failed", {"release": name, "session_id": session_id,
                                                      "reason": verdict.reason, "at": at})
        return True

    def _send(self, release: str, kind: str, data: dict[str, Any]) -> None:
        if self._push is not None:
            self._push(f"msg_smoke_{release}_{data['session_id']}", kind, data)
