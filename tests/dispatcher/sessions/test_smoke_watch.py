"""A smoke session's verdict as the watcher records it: from the machine's reports as they arrive,
once, with its webhook; at the deadline when nothing decided it; never for a session that is not the
release's running smoke."""

from __future__ import annotations

import asyncio
from typing import Any

from dispatcher.releases.catalogue import Catalogue, Release
from dispatcher.releases.live import LiveReleases
from dispatcher.sessions.smoke_watch import SmokeWatch
from dispatcher.store.release_book import MemoryReleaseBook

CATALOGUE = Catalogue((Release("stable", {"*": "img-a"}), Release("next", {"*": "img-b"})), canary_percent=20)


class Recorded:
    """The timelines and webhooks the watcher reads and sends."""

    def __init__(self) -> None:
        self.events: dict[str, list[dict[str, Any]]] = {}
        self.sent: list[tuple[str, str, dict[str, Any]]] = []

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        return list(self.events.get(session_id, []))

    def push(self, message_id: str, kind: str, data: dict[str, Any]) -> None:
        self.sent.append((message_id, kind, data))

    def report(self, watch: SmokeWatch, session_id: str, kind: str, **fields: Any) -> None:
        record = {"event": kind, "at": float(len(self.events.get(session_id, []))), **fields}
        self.events.setdefault(session_id, []).append(record)
        watch.timeline_event(session_id, record)


async def running(deadline: float = 120.0) -> tuple[LiveReleases, SmokeWatch, Recorded]:
    releases = LiveReleases(CATALOGUE, MemoryReleaseBook())
    await releases.refresh()
    seen = Recorded()
    watch = SmokeWatch(releases, seen.read, seen.push, deadline_seconds=deadline)
    await releases.change(lambda t, v: t.smoke_started("next", "s1", 1.0, 600.0, "admin-1", v))
    return releases, watch, seen


async def test_the_callers_first_audio_passes_it_once_with_its_webhook_and_the_canary_share() -> None:
    releases, watch, seen = await running()
    for kind in ("requested", "ready", "joined", "first_audio", "ended"):
        seen.report(watch, "s1", kind)
    await watch.settled()
    traffic = releases.traffic
    assert traffic.smoke_of("next").status == "passed" and traffic.weights == {"stable": 80, "next": 20}
    assert [(kind, data["release"], data["session_id"]) for _, kind, data in seen.sent] == [
        ("release.smoke_passed", "next", "s1")]
    history = await releases.history(10)
    assert history[0]["by"] == "smoke session" and history[0]["to"] == {"stable": 80, "next": 20}


async def test_the_bots_error_fails_it_and_it_keeps_no_traffic() -> None:
    releases, watch, seen = await running()
    seen.report(watch, "s1", "joined")
    seen.report(watch, "s1", "error", detail="KeyError: 'OPENAI_API_KEY'")
    await watch.settled()
    smoke = releases.traffic.smoke_of("next")
    assert smoke.status == "failed" and "KeyError: 'OPENAI_API_KEY'" in smoke.reason
    assert releases.traffic.weights == {"stable": 100, "next": 0}
    assert [kind for _, kind, _ in seen.sent] == ["release.smoke_failed"]


async def test_undecided_at_its_deadline_it_failed_and_its_machine_is_stopped() -> None:
    releases, watch, seen = await running(deadline=0.05)
    stopped: list[str] = []

    async def stop(session_id: str) -> None:
        stopped.append(session_id)

    seen.report(watch, "s1", "ready")
    watch.watch("s1", stop)
    await asyncio.wait_for(watch.settled(), 30)
    smoke = releases.traffic.smoke_of("next")
    assert smoke.status == "failed"
    assert smoke.reason == "no audio within 0.05 s: the bot was ready, but no caller joined"
    assert stopped == ["s1"]


async def test_reports_of_another_session_decide_nothing() -> None:
    releases, watch, seen = await running()
    seen.report(watch, "other", "joined")
    seen.report(watch, "other", "first_audio")
    await watch.settled()
    assert releases.traffic.smoke_of("next").status == "running" and seen.sent == []
