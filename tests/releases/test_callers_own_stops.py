"""A release is judged on what its bot did, not on what its callers did, with real processes: a
dispatcher with releases of real bot files and callers that stop their sessions themselves
(`DELETE /sessions/{id}`), as clients with a timeout, or a key out to sink a canary, do.

- A caller who hangs up on the canary as soon as its bot greets it, session after session, leaves a
  healthy canary healthy: the bot ended because it was told to, or because its caller left (the
  peer connection closed, no stop) before any exchange.
- Callers who give up on a canary whose bots never become ready, once they waited longer than the
  stable release takes (and than a cold start takes), roll it back: each such stop is a start that failed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import stable_last
from tests.support.http_client import api_client
from tests.support.processes import run_dispatcher
from tests.support.releases import ADMIN, ADMIN_KEY, WAIT, drawn_start, rollback_env, session_over
from tests.support.waiting import until
from tests.support.webrtc_client import WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a real dispatcher and real bot processes importing Pipecat

BOTS = Path(__file__).resolve().parents[1] / "bots"
SAMPLE = 6  # RELEASE_HEALTH_MIN_CANARY and _MIN_STABLE: 6 of 6 failed against 0 of 6 breaches
# Idle bots the reserve keeps for the good bots' tests, half for each release: the next sessions' bots
# import Pipecat while the callers before them are greeted.
WARM = 4
CALLERS_AT_ONCE = 3  # canary callers on the line at once (a bot process each): two cores shared with other work
GAVE_UP_FLOOR = 5.0  # the judge never holds a caller's stop before ready against a bot sooner than this
Events = list[dict[str, Any]]


async def _timeline(api: httpx.AsyncClient, session_id: str) -> Events:
    answer = await api.get(f"/sessions/{session_id}/timeline")
    assert answer.status_code == 200, answer.text
    events: Events = answer.json()["events"]
    return events


def _at(events: Events, name: str) -> float | None:
    return next((float(e["at"]) for e in events if e.get("event") == name), None)


async def _judged(api: httpx.AsyncClient, headers: dict[str, str] | None = None,
                  canary: str = "next") -> dict[str, Any]:
    """The canary's entry in `GET /releases` once the judge has its sample (no longer `watching`)."""
    seen: dict[str, Any] = {}

    async def settled() -> bool:
        listed = (await api.get("/releases", headers=headers)).json()["releases"]
        seen.update(next(r for r in listed if r["name"] == canary))
        return bool(seen["health"]["state"] != "watching")

    await until(settled, f"the canary {canary} judged", timeout=2 * WAIT)
    return seen


async def _hang_up_once_greeted(api: httpx.AsyncClient, session_id: str, *, stop: bool) -> None:
    """A caller who connects, hears the greeting and hangs up at once: by stopping the session (`stop`),
    or by closing its peer connection, as a WebRTC caller who leaves does."""
    async with WebRTCClient(f"{api.base_url}/sessions/{session_id}/api/offer", connect_timeout=WAIT) as client:
        deadline = time.monotonic() + WAIT
        while client.result().connect_to_first_audio is None:
            assert time.monotonic() < deadline, "the canary's greeting never came"
            await asyncio.sleep(0.1)
        if stop:
            stopped = await api.delete(f"/sessions/{session_id}")
            assert stopped.status_code in (202, 204), stopped.text
    await session_over(api, session_id)


async def test_keys_hanging_up_on_every_canary_session_once_greeted_leave_a_healthy_canary_healthy(
        tmp_path: Path) -> None:
    """Three releases of the same good bot, a third of the starts each: the callers of the canary
    `stopped` stop each of its sessions once greeted, those of the canary `left` close their peer
    connection then (each canary is judged against the stable release alone, as any canary is)."""
    bot = BOTS / "greeter.py"
    env = {**rollback_env(bot, bot, warm=WARM), "BOT_RELEASES": f"stable={bot},stopped={bot},left={bot}",
           "RELEASE_WEIGHTS": "stable=34,stopped=33,left=33",
           "RELEASE_HEALTH_MIN_CANARY": str(SAMPLE), "RELEASE_HEALTH_MIN_STABLE": str(SAMPLE),
           # A stable session nobody joins ends after this, no fault of its bot, and not "within 5 s".
           "BOT_CONNECT_TIMEOUT_SECONDS": "6"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with api_client(base_url=dispatcher.base_url, timeout=WAIT) as api:
            drawn: dict[str, list[str]] = {"stable": [], "stopped": [], "left": []}
            callers: list[asyncio.Task[None]] = []  # the canaries' callers, each on the line as the next start comes
            n = 0
            while any(len(sessions) < SAMPLE for sessions in drawn.values()):
                if len(on_the_line := [caller for caller in callers if not caller.done()]) >= CALLERS_AT_ONCE:
                    await asyncio.wait(on_the_line, return_when=asyncio.FIRST_COMPLETED)
                session_id, release = await drawn_start(api, n := n + 1)
                drawn[release].append(session_id)
                if release != "stable":
                    callers.append(asyncio.create_task(
                        _hang_up_once_greeted(api, session_id, stop=release == "stopped")))
            await asyncio.gather(*callers, *(session_over(api, s) for s in drawn["stable"]))
            judged = {canary: await _judged(api, canary=canary) for canary in ("stopped", "left")}
            timelines = {canary: [await _timeline(api, s) for s in drawn[canary]] for canary in judged}
    # What each stopped session was: a bot ready and greeting, its caller's stop, the bot's end on it,
    # all within seconds of joining (judged "ended early", a failure of the release, were it the bot's doing).
    for events in timelines["stopped"]:
        joined, stop, ended = _at(events, "joined"), _at(events, "stop_requested"), _at(events, "ended")
        assert joined is not None and stop is not None and ended is not None, events
        assert joined <= stop <= ended and ended - joined < GAVE_UP_FLOOR, events
    # Each left session: greeted, then over within seconds of joining on the peer's leaving, no stop.
    for events in timelines["left"]:
        joined, ended = _at(events, "joined"), _at(events, "ended")
        assert joined is not None and ended is not None and _at(events, "stop_requested") is None, events
        reasons = [e.get("reason") for e in events if e.get("event") == "ended"]
        assert reasons == ["peer_disconnected"] and ended - joined < GAVE_UP_FLOOR, events
    for canary in judged.values():
        assert canary["weight"] == 33 and canary["health"] == {"state": "healthy", "reason": None}, canary


async def _give_up(api: httpx.AsyncClient, session_id: str, after: float) -> Events:
    """A caller who waits `after` seconds from its start for a bot that is not ready, then stops it."""
    began = _at(await _timeline(api, session_id), "requested")
    assert began is not None
    await asyncio.sleep(max(0.0, began + after - time.time()))
    events = await _timeline(api, session_id)
    stopped = await api.delete(f"/sessions/{session_id}")
    assert stopped.status_code in (202, 204), stopped.text
    await session_over(api, session_id)
    return events


async def test_callers_who_give_up_on_a_canary_whose_bots_never_get_ready_roll_it_back(tmp_path: Path) -> None:
    # Each side's sessions from a key whose release it is, so the stable release's sample (and with it
    # how long it takes to be ready) is complete before any canary caller gives up.
    env = {**rollback_env(BOTS / "greeter.py", BOTS / "never_ready.py"), **stable_last.KEY_RELEASES,
           "DISPATCHER_ADMIN_KEYS": ADMIN_KEY,
           "RELEASE_HEALTH_MIN_CANARY": str(SAMPLE), "RELEASE_HEALTH_MIN_STABLE": str(SAMPLE),
           "BOT_CONNECT_TIMEOUT_SECONDS": "6"}
    with run_dispatcher(tmp_path, env) as dispatcher:
        async with (api_client(base_url=dispatcher.base_url, timeout=WAIT,
                               headers={"Authorization": f"Bearer {stable_last.TESTER_KEY}"}) as tester,
                    api_client(base_url=dispatcher.base_url, timeout=WAIT,
                               headers={"Authorization": f"Bearer {stable_last.CALLER_KEY}"}) as caller):
            stable = [await stable_last.keyed_start(caller, n, "stable") for n in range(SAMPLE)]
            await asyncio.gather(*(session_over(caller, s) for s in stable))
            judged = f"0 of {SAMPLE} sessions judged (stable: {SAMPLE} of {SAMPLE})"
            await until(lambda: _reason_is(tester, judged), "the stable sample judged", timeout=2 * WAIT)
            readies = []
            for session_id in stable:
                events = await _timeline(caller, session_id)
                ready, began = _at(events, "ready"), _at(events, "requested")
                assert ready is not None and began is not None, events
                readies.append(ready - began)
            # Longer than the stable release's slowest start (so past its p95), than the dispatcher's own
            # quote for a cold start (what a start with no patience is refused with), and the judge's floor.
            refused = await caller.post("/start", json={"maxWaitSeconds": 0.1})
            assert refused.status_code == 503, refused.text
            quote = float(refused.json()["error"]["ready_in_seconds"])
            patience = max(GAVE_UP_FLOOR, quote, *readies) + 2.0
            canary = [await stable_last.keyed_start(tester, n, "next") for n in range(SAMPLE)]
            seen = await asyncio.gather(*(_give_up(tester, s, patience) for s in canary))
            health = await _judged(tester, ADMIN)
            history = (await tester.get("/releases/history", headers=ADMIN)).json()["changes"]
    assert all(_at(events, "ready") is None for events in seen), seen  # no canary bot was ever ready
    assert health["weight"] == 0 and health["health"]["state"] == "breached", health
    assert health["health"]["reason"].startswith(f"{SAMPLE} of {SAMPLE} sessions failed ({SAMPLE} failed to start)")
    assert history[0]["by"] == "automatic rollback" and history[0]["to"] == {"stable": 100, "next": 0}, history


async def _reason_is(api: httpx.AsyncClient, reason: str) -> bool:
    return bool((await stable_last.canary_health(api))["health"]["reason"] == reason)
