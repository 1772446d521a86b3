"""One caller on each of a real dispatcher's two releases at once, each session from an API key whose
release it is (`stable_last.KEY_RELEASES`: judged, not pinned), so two calls are all it takes: what the
release judge makes of each session, from the timeline its bot's reports wrote."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass

import httpx

from dispatcher.releases.health import SessionOutcome
from dispatcher.sessions.release_outcome import outcome_of
from tests.support.http_client import api_client
from tests.support.stable_last import CALLER_KEY, KEY_RELEASES, TESTER_KEY, keyed_start

__all__ = ["KEY_RELEASES", "Judged", "good_outcome", "one_call_to_each_release"]


@dataclass(frozen=True)
class Judged:
    session_id: str
    release: str
    outcome: SessionOutcome | None  # as the release watch reads the session's timeline


async def one_call_to_each_release(base_url: str, timeout: float,
                                   call: Callable[[httpx.AsyncClient, str], Awaitable[None]]) -> list[Judged]:
    """A session of each release at the dispatcher at `base_url` (launched with `KEY_RELEASES`), started
    with the key whose release it is and called by `call(client, session_id)` with that key's client,
    both at once; each call ends with its session. A caller's failure fails the test with its own message."""
    keys = {"stable": CALLER_KEY, "next": TESTER_KEY}
    async with AsyncExitStack() as stack:
        clients = {release: await stack.enter_async_context(api_client(
            base_url=base_url, timeout=timeout, headers={"Authorization": f"Bearer {key}"}))
            for release, key in keys.items()}
        sessions = {release: await keyed_start(api, 0, release) for release, api in clients.items()}
        await asyncio.gather(*(call(clients[release], session_id) for release, session_id in sessions.items()))
        judged = []
        for release, session_id in sessions.items():
            events = (await clients[release].get(f"/sessions/{session_id}/timeline")).json()["events"]
            judged.append(Judged(session_id, release, outcome_of(events)))
    assert sorted(session.release for session in judged) == ["next", "stable"], judged
    return judged


def good_outcome(session: Judged, said: object) -> SessionOutcome:
    """`session`'s outcome as the judge reads it, checked: of its release, no failure (a session past a
    short one, its bot's doing none), its first audio on the timeline. `said`: what a failure shows."""
    outcome = session.outcome
    assert outcome is not None and outcome.release == session.release, said
    assert outcome.failure is None, f"judged a failure: {said}"
    assert outcome.first_audio_seconds is not None, f"no first audio on the timeline: {said}"
    return outcome
