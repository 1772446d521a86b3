"""The order in which a canary's breach completes on its stable side, for real dispatcher
processes: a canary `next` whose sessions all fail first, its whole sample judged while the stable
release has none, then the stable release's sample, its sessions ending on their own. Each side's
sessions come from an API key whose release it is (`DISPATCHER_API_KEY_RELEASES`), so the order is
the test's, not the draw's; the canary takes half the traffic all along."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import httpx

from tests.support.releases import ADMIN, WAIT, session_over
from tests.support.waiting import until

TESTER_KEY, CALLER_KEY = "stable-last-tester-key-0123456789", "stable-last-caller-key-0123456789"
# The tester's key takes the canary, the caller's the stable release (both judged: neither is pinned),
# each named by the start of its SHA-256 (a key's name would need BOT_CHANNEL_TOKEN with replicas).
KEY_RELEASES = {"DISPATCHER_API_KEYS": f"{TESTER_KEY},{CALLER_KEY}",
                "DISPATCHER_API_KEY_RELEASES": ",".join(
    f"{release}={hashlib.sha256(key.encode()).hexdigest()[:16]}"
    for release, key in (("next", TESTER_KEY), ("stable", CALLER_KEY)))}
TERMINAL = ("ended", "failed", "machine_ended")  # a session's end, as the judge takes it


async def keyed_start(api: httpx.AsyncClient, n: int, release: str) -> str:
    started = await api.post("/start", json={}, headers={"Idempotency-Key": f"keyed-{release}-{n}"})
    assert started.status_code == 201, started.text
    assert started.json()["release"] == release, started.json()
    return str(started.json()["session_id"])


async def canary_health(api: httpx.AsyncClient) -> dict[str, Any]:
    """The canary's entry in `GET /releases` (its weight and health) at `api`'s dispatcher."""
    listed = (await api.get("/releases", headers=ADMIN)).json()["releases"]
    return dict(next(r for r in listed if r["name"] == "next"))


async def stable_after_canary(canary: httpx.AsyncClient, stable: httpx.AsyncClient, sample: int) -> float:
    """The canary's `sample` sessions started at `canary` and judged, all before any of the stable
    release's; then the stable release's `sample` sessions started at `stable` and over. Returns when
    the stable sample reached its minimum: its last session's end, by the dispatcher's clock."""
    for n in range(sample):
        await keyed_start(canary, n, "next")
    judged = f"{sample} of {sample} sessions judged (stable: 0 of {sample})"
    await until(lambda: _reason_is(canary, judged), f"the canary's {sample} failures judged", timeout=2 * WAIT)
    sessions = [await keyed_start(stable, n, "stable") for n in range(sample)]
    await asyncio.gather(*(session_over(stable, s) for s in sessions))
    return max([await _ended_at(stable, s) for s in sessions])


async def first_seen_at_zero(api: httpx.AsyncClient, timeout: float = 3 * WAIT) -> float:
    """When the first request that `api`'s dispatcher answered with the canary's weight at 0 was sent
    (polled every 50 ms from the call on, so started before the stable's sessions end). The time sent,
    not answered: a loaded test process reads its answers late; the dispatcher's own time for the
    rollback is its audit line's."""
    deadline = time.time() + timeout
    while True:
        sent = time.time()
        if (await canary_health(api))["weight"] == 0:
            return sent
        if sent > deadline:
            raise AssertionError(f"the canary kept its traffic for {timeout} s")
        await asyncio.sleep(0.05)


async def seen_at_zero(polling: asyncio.Task[float], timeout: float = 10.0) -> float:
    """`first_seen_at_zero`'s answer, awaited at most `timeout` s once the stable's sessions are over
    (far more than the rule allows: a canary that keeps its traffic fails here, not after the poll's wait)."""
    try:
        return await asyncio.wait_for(polling, timeout)
    except TimeoutError:
        raise AssertionError(f"the canary kept its traffic {timeout} s after the stable's sessions were over") from None


async def _reason_is(api: httpx.AsyncClient, reason: str) -> bool:
    return (await canary_health(api))["health"]["reason"] == reason


async def _ended_at(api: httpx.AsyncClient, session_id: str) -> float:
    events = (await api.get(f"/sessions/{session_id}/timeline")).json()["events"]
    return min(float(e["at"]) for e in events if e["event"] in TERMINAL)
