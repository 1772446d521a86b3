"""Callers of a real dispatcher's two releases, each start drawn by weight, until each release has had
a few calls: what the release judge makes of each session, from the timeline its bot's reports wrote."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from dispatcher.releases.health import SessionOutcome
from dispatcher.sessions.release_outcome import outcome_of
from tests.support.releases import drawn_start


@dataclass(frozen=True)
class Judged:
    session_id: str
    release: str
    outcome: SessionOutcome | None  # as the release watch reads the session's timeline


async def calls_to_each_release(api: httpx.AsyncClient, call: Callable[[str], Awaitable[None]], *, each: int,
                                at_once: int) -> list[Judged]:
    """Drawn starts, `at_once` callers at a time (each `call(session_id)` ends with its session), until
    both `stable` and `next` have had `each`; a start is drawn only once a caller is free for it, so no
    session waits unjoined. A caller's failure fails the test with its own message."""
    drawn: dict[str, list[str]] = {"stable": [], "next": []}
    free = asyncio.Semaphore(at_once)
    calls: list[asyncio.Task[None]] = []

    async def one(session_id: str) -> None:
        try:
            await call(session_id)
        finally:
            free.release()

    n = 0
    while min(len(ids) for ids in drawn.values()) < each:
        await free.acquire()
        if any(task.done() and task.exception() is not None for task in calls):
            free.release()
            break
        session_id, release = await drawn_start(api, n := n + 1)
        drawn[release].append(session_id)
        calls.append(asyncio.create_task(one(session_id)))
    await asyncio.gather(*calls)
    judged = []
    for release, ids in drawn.items():
        for session_id in ids:
            events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
            judged.append(Judged(session_id, release, outcome_of(events)))
    return judged


def good_outcome(session: Judged, said: object) -> SessionOutcome:
    """`session`'s outcome as the judge reads it, checked: of its release, no failure (a session past a
    short one, its bot's doing none), its first audio on the timeline. `said`: what a failure shows."""
    outcome = session.outcome
    assert outcome is not None and outcome.release == session.release, said
    assert outcome.failure is None, f"judged a failure: {said}"
    assert outcome.first_audio_seconds is not None, f"no first audio on the timeline: {said}"
    return outcome
