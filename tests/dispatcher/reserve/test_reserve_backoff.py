"""Backing off after failed bots: the launch schedule a broken bot gets, and the recovery, on its own
and with real bot processes running a broken bot file."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.reserve.backoff import CAP_SECONDS, FailedBots
from dispatcher.settings import Settings
from tests.dispatcher.reserve.test_reserve import WAIT, Dispatcher
from tests.support.dispatcher_server import serving
from tests.support.webrtc_client import WebRTCClient

BOTS = Path(__file__).resolve().parents[2] / "bots"
BROKEN = BOTS / "broken_missing_module.py"
GOOD = BOTS / "greeter.py"
RAISES = BOTS / "broken_raises.py"
RAISED = "BotConfigurationError: the test bot fails on purpose"


def test_each_failed_bot_in_a_row_doubles_the_wait_up_to_the_cap() -> None:
    failed = FailedBots(base_seconds=2.0)
    waits = []
    for n in range(10):
        failed.failed(now=100.0, reason=f"bot {n} exited before its hello")
        waits.append(failed.waiting_seconds(100.0))
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, CAP_SECONDS, CAP_SECONDS]
    assert (failed.in_a_row, failed.total, failed.last_reason) == (10, 10, "bot 9 exited before its hello")


def test_while_failing_the_reserve_launches_nothing_while_waiting_then_one_probe_at_a_time() -> None:
    failed = FailedBots(base_seconds=2.0)
    assert failed.launches(0.0, 3, warming=2) == 3  # no failure: the plan stands
    failed.failed(now=10.0, reason="x")
    assert failed.launches(11.9, 3, warming=0) == 0
    assert failed.launches(12.0, 3, warming=1) == 0  # a probe still warming: wait for its verdict
    assert failed.launches(12.0, 3, warming=0) == 1


def test_a_broken_bot_gets_at_most_6_launches_a_minute_and_a_healthy_one_ends_the_backoff() -> None:
    """The reserve's loop, one tick a second: a launched bot is found dead `detect` seconds later."""
    failed = FailedBots()
    detect = 1.0  # as fast as a dead bot can be noticed: the sooner, the more launches
    launches: list[float] = []
    warming: float | None = None  # launched at
    for tick in range(61):
        now = float(tick)
        if warming is not None and now - warming >= detect:
            failed.failed(now, "exit code 4: bot.py: importing it failed")
            warming = None
        wanted = 2 if warming is None else 0  # the plan: refill an empty reserve of 2
        for _ in range(failed.launches(now, wanted, warming=0 if warming is None else 1)):
            launches.append(now)
            warming = now
    assert len(launches) <= 6, launches
    failed.healthy()
    assert failed.launches(61.0, 2, warming=0) == 2 and failed.waiting_seconds(61.0) == 0.0


# --- the real thing: real bot processes with a broken bot file, the reserve on a fake clock ------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.asynccontextmanager
async def real_bots(**env: str) -> AsyncIterator[Dispatcher]:
    """A dispatcher app whose reserve launches real `python -m bot` processes, refilled by hand on
    a fake clock (no background loop): one tick is one `refill()` and one fake second."""
    machines = LocalMachines(LocalSettings(stop_grace_seconds=2))
    env = {"RESERVE_MIN_IDLE": "1", "RESERVE_BUFFER": "0", "RESERVE_BURST": "0", **env}
    app = create_app(Settings(max_concurrent_sessions=50), env=env, machines=machines, rooms=None)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1")
    served = serving(app)
    await served.__aenter__()
    try:
        yield Dispatcher(app, client)
    finally:
        await client.aclose()
        await app.state.voicefleet.aclose()
        await served.__aexit__(None, None, None)


@pytest.fixture
async def reserve_with_real_bots(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Dispatcher]:
    monkeypatch.setenv("BOT_FILE", str(BROKEN))
    async with real_bots() as d:
        yield d


async def tick(d: Dispatcher, clock: FakeClock, launched: list[str]) -> None:
    """One refill; then every reserve bot it started has run to its end (a broken bot exits at import)."""
    before = set(d.machines._idle)
    await d.reserve.refill()
    new = set(d.machines._idle) - before
    launched.extend(new)
    for bot_id in new:
        monitor = d.machines._idle[bot_id].monitor
        if monitor is not None and os.environ.get("BOT_FILE") == str(BROKEN):
            await asyncio.wait_for(asyncio.shield(monitor), WAIT)
    clock.now += 1.0


@pytest.mark.timeout(300)
async def test_a_broken_bot_file_backs_off_is_reported_and_recovers_by_itself(
    reserve_with_real_bots: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real bots until two have failed (the first and the probe after its wait): each launch is a real bot
    host's import, so the minute's schedule (at most 6 launches) is checked on the reserve's own code,
    test_a_broken_bot_gets_at_most_6_launches_a_minute_and_a_healthy_one_ends_the_backoff."""
    d = reserve_with_real_bots
    clock = FakeClock()
    d.reserve._clock = clock  # the reserve's own knob: time is whatever the test says
    launched: list[str] = []
    for _ in range(60):
        await tick(d, clock, launched)
        if len(launched) >= 2 and d.reserve.failed_bots.total >= 2:
            break
    assert 2 <= len(launched) <= 6, launched

    exception = "ModuleNotFoundError: No module named 'voicefleet_test_module_that_does_not_exist'"
    failed = d.reserve.failed_bots.total
    assert failed >= len(launched) - 1  # the last one may not be found dead yet
    assert await d.metric("voicefleet_reserve_failed_bots_total", provider="local") == failed
    assert await d.metric("voicefleet_reserve_backoff_seconds", provider="local") > 0
    health = (await d.client.get("/healthz")).json()
    assert health["status"] == "ok" and health["detail"].startswith("reserve backing off: ")
    assert str(BROKEN) in health["detail"] and exception in health["detail"]

    # A start meanwhile goes cold, and its answer names the file and the exception.
    started = await d.client.post("/start?wait=started", json={})
    assert started.status_code == 502, started.text
    assert str(BROKEN) in started.json()["error"]["message"] and exception in started.json()["error"]["message"]

    # The bot is fixed: the next probe comes up, says hello, and the backoff is over.
    monkeypatch.setenv("BOT_FILE", str(GOOD))
    probes = len(launched)
    for _ in range(400):  # the rest of the backoff's wait, in fake seconds (at most its cap)
        await tick(d, clock, launched)
        if len(launched) > probes:
            break
    assert await d.channels.wait_until(lambda: len(d.channels.idle()) >= 1, WAIT), "the good bot never came up"
    await d.reserve.refill()
    assert d.reserve.failed_bots.in_a_row == 0
    assert "detail" not in (await d.client.get("/healthz")).json()
    assert await d.metric("voicefleet_reserve_backoff_seconds", provider="local") == 0


@pytest.mark.timeout(180)
async def test_a_bot_whose_bot_function_raises_fails_its_session_with_the_exception_and_counts_as_failed(
    reserve_with_real_bots: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file imports (the bot says hello, is claimed warm) but `bot()` raises once the caller's
    offer arrives: the session fails naming the file and the exception, and the reserve counts it."""
    d = reserve_with_real_bots
    monkeypatch.setenv("BOT_FILE", str(RAISES))
    await d.reserve.refill()
    assert await d.channels.wait_until(lambda: len(d.channels.idle()) >= 1, WAIT), "the bot never came up"
    started = await d.client.post("/start", json={})
    assert started.status_code == 201, started.text
    session_id = started.json()["session_id"]

    async def signal(offer: dict[str, object]) -> dict[str, object]:
        answer = await d.client.post(f"/sessions/{session_id}/api/offer", json=offer)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    client = WebRTCClient("unused", signal=signal, connect_timeout=5)
    try:
        await client.connect()
    except TimeoutError:
        pass  # the bot is gone before the peer connection is up
    finally:
        await client.close()
    assert await d.channels.wait_until(lambda: d.reserve.failed_bots.total >= 1, WAIT), "no failed bot counted"
    assert d.reserve.failed_bots.last_reason == f"{RAISES}:11: bot() raised {RAISED}"
    await asyncio.wait_for(asyncio.shield(d.machines._bots[session_id].monitor), WAIT)  # type: ignore[arg-type]
    session = (await d.client.get(f"/sessions/{session_id}")).json()
    assert session["status"] == "failed"
    assert session["detail"] == f"exit code 4: {RAISES}:11: bot() raised {RAISED}"


@pytest.mark.timeout(300)
async def test_a_broken_canary_backs_off_alone_and_the_stable_release_keeps_refilling() -> None:
    """Two releases, real bots: the canary's bot file does not import. Its failed bots back off its
    own launches only; a stable bot claimed meanwhile is replaced at once, and /healthz, the metrics
    still tell the deployment's backoff."""
    clock = FakeClock()
    async with real_bots(BOT_RELEASES=f"stable={GOOD},canary={BROKEN}", RELEASE_WEIGHTS="stable=95,canary=5") as d:
        d.reserve._clock = clock

        def idle(release: str) -> set[str]:
            return {link.machine_id for link in d.channels.idle()
                    if d.machines._idle[link.machine_id].spec.release == release}

        launched: dict[str, list[str]] = {"stable": [], "canary": []}

        async def refill() -> None:
            before = set(d.machines._idle)
            await d.reserve.refill()
            for bot_id in set(d.machines._idle) - before:
                bot = d.machines._idle[bot_id]
                launched[bot.spec.release].append(bot_id)
                if bot.spec.release == "canary" and bot.monitor is not None:  # it exits at its import
                    await asyncio.wait_for(asyncio.shield(bot.monitor), WAIT)

        await refill()
        assert await d.channels.wait_until(lambda: len(idle("stable")) == 1, WAIT), "the stable bot never came up"
        for _ in range(120):  # fake seconds, until the canary's dead bot is found
            if d.reserve.failed_bots.total:
                break
            clock.now += 1.0
            await refill()
        assert d.reserve.failed_bots.total == 1 and str(BROKEN) in (d.reserve.failed_bots.last_reason or "")
        [stable_bot] = idle("stable")

        # A stable start takes the stable bot; the next refill replaces it, the canary waits its backoff.
        started = await d.client.post("/start", json={"release": "stable"})
        assert started.status_code == 201, started.text
        assert started.json()["status"] == "started"  # warm
        canary_launches = len(launched["canary"])
        await refill()
        assert await d.channels.wait_until(lambda: len(idle("stable") - {stable_bot}) == 1, WAIT), \
            f"the stable release was not refilled while the canary backs off: launched {launched}"
        assert len(launched["canary"]) == canary_launches

        # The deployment's view: backing off, for the canary's reason.
        health = (await d.client.get("/healthz")).json()
        assert health["detail"].startswith("reserve backing off: 1 failed bot(s) in a row")
        assert str(BROKEN) in health["detail"]
        assert await d.metric("voicefleet_reserve_failed_bots_in_a_row", provider="local") == 1
        assert await d.metric("voicefleet_reserve_backoff_seconds", provider="local") > 0
