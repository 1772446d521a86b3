"""A SIP call whose bot's side ended first: the edge's end (who hung up, and its count of the call's answered
seconds, which price it) comes after the session's `ended`. Its `session.ended` webhook waits for it in the
outbox, at most EDGE_END_WAIT_SECONDS, and the usage count waits as long: both carry the edge's end and its
price; past the bound the webhook goes once, as before; a session that is no SIP call is never put off."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.observability import sip_end
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.reserve.prices import BotPrice
from dispatcher.sessions.cost import SessionCosts
from dispatcher.sessions.webhook_outbox import MemoryOutbox
from dispatcher.sessions.webhooks import LifecycleWebhooks, WebhookSettings, secret_key
from dispatcher.settings import Settings
from tests.support.hook_receiver import hook_receiver
from tests.support.waiting import within

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
EDGE_SECRET = "edge-control-secret-for-the-tests-0123456789"
EDGE = {"X-Voicefleet-Edge-Secret": EdgeSecret(EDGE_SECRET).edge_credential("http://10.0.0.5:5080")}
T0 = time.time() - 600
# The edge's own BYE once the bot's side ended, with its count: 90 s answered, where the dispatcher's own
# view of the call (its bot's `joined` to its `ended`) is 60 s. Billed by the second at $0.60 a minute.
EDGE_END = {"by": "edge", "how": "bye", "reason": "the bot's side ended", "answered_seconds": 90.0}
PRICED_LINE = {"trunk": "twilio", "direction": "inbound", "usd_per_minute": 0.6, "increment_seconds": 1}


def call(*, sip: bool, ended: float | None = None) -> list[dict[str, Any]]:
    """A call's timeline up to its bot's end, at `ended` (now unless given): a SIP call's has the edge's priced
    line."""
    t0 = (time.time() if ended is None else ended) - 62
    line = [{"event": "telephony", "at": t0 + 1, **PRICED_LINE}] if sip else []
    return [{"event": "requested", "at": t0}, {"event": "launched", "at": t0 + 1}, *line,
            {"event": "joined", "at": t0 + 2}, {"event": "ended", "at": t0 + 62, "reason": "completed"}]


def receiving(received: list[tuple[float, dict[str, Any]]]):
    async def hook(request: web.Request) -> web.Response:
        received.append((time.time(), Webhook(SECRET).verify(await request.read(), dict(request.headers))))
        return web.Response(status=204)

    return hook


def deliverer(url: str, timelines: dict[str, list[dict[str, Any]]]) -> LifecycleWebhooks:
    async def read(session_id: str) -> list[dict[str, Any]]:
        return list(timelines.get(session_id, []))

    return LifecycleWebhooks(WebhookSettings(url, secret_key(SECRET), timeout_seconds=2.0), read, MemoryOutbox(),
                             costs=SessionCosts("fly", BotPrice(730.0, "1 vCPU, 2 GB", "test")))


@pytest.fixture
def patient(monkeypatch: pytest.MonkeyPatch) -> None:
    """The edge's end waited for a minute, not 5 s: a machine that stalls for seconds before the end is told must
    not make the wait run out (the wait ends as the end comes; its bound is tested on its own)."""
    monkeypatch.setattr(sip_end, "EDGE_END_WAIT_SECONDS", 60.0)


@pytest.mark.usefixtures("patient")
async def test_a_sip_calls_ended_webhook_waits_for_the_edges_late_end_and_carries_it_and_its_price() -> None:
    received: list[tuple[float, dict[str, Any]]] = []
    timelines = {"sip": call(sip=True)}
    async with hook_receiver(receiving(received)) as url:
        hooks = deliverer(url, timelines)
        hooks.timeline_event("sip", timelines["sip"][-1])
        await asyncio.sleep(1.5)  # looked at, and put off: its edge has not told its end
        assert received == []
        told = time.time()
        timelines["sip"].append({"event": "sip_ended", "at": told, **EDGE_END})
        assert await within(lambda: hooks.delivered == 1, timeout=10)
        await hooks.aclose()
    [(at, ended)] = received
    assert at >= told
    assert ended["data"]["sip"] == {"by": "edge", "how": "bye", "reason": "the bot's side ended"}
    telephony = ended["data"]["cost"]["telephony"]
    assert (telephony["seconds"], telephony["usd"]) == (90.0, 0.9), telephony


async def test_a_session_that_is_no_sip_call_is_never_put_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sip_end, "EDGE_END_WAIT_SECONDS", 600.0)  # a SIP call's end would wait past the test
    received: list[tuple[float, dict[str, Any]]] = []
    timelines = {"web": call(sip=False), "sip": call(sip=True)}
    async with hook_receiver(receiving(received)) as url:
        hooks = deliverer(url, timelines)
        hooks.timeline_event("sip", timelines["sip"][-1])
        hooks.timeline_event("web", timelines["web"][-1])
        assert await within(lambda: hooks.delivered == 1, timeout=10)
        await asyncio.sleep(1.5)
        await hooks.aclose()
    assert [e["data"]["session_id"] for _, e in received] == ["web"]
    assert "sip" not in received[0][1]["data"] and "telephony" not in received[0][1]["data"]["cost"]


async def test_past_its_bound_a_sip_calls_ended_webhook_goes_once_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """The edge never told its end (its dispatcher link down, or it stopped): the webhook goes after the bound,
    priced on the dispatcher's own view of the call, once, and nothing of it is left in the outbox."""
    monkeypatch.setattr(sip_end, "EDGE_END_WAIT_SECONDS", 1.0)
    received: list[tuple[float, dict[str, Any]]] = []
    timelines = {"sip": call(sip=True)}
    async with hook_receiver(receiving(received)) as url:
        hooks = deliverer(url, timelines)
        first_look = timelines["sip"][-1]["at"]
        hooks.timeline_event("sip", timelines["sip"][-1])
        assert await within(lambda: hooks.delivered == 1, timeout=10)
        await asyncio.sleep(2.5)  # nothing more is tried
        assert await hooks._outbox.claim(time.time() + 3600, 5.0, 10) == []  # type: ignore[attr-defined]
        await hooks.aclose()
    [(at, ended)] = received
    assert at >= first_look + 1.0
    assert "sip" not in ended["data"] and ended["data"]["cost"]["telephony"]["seconds"] == 60.0


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, list[tuple[float, dict[str, Any]]]]]:
    received: list[tuple[float, dict[str, Any]]] = []
    async with hook_receiver(receiving(received)) as url:
        env = {"SIP_EDGE_SECRET": EDGE_SECRET, "WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET, "RESERVE_MAX_IDLE": "0"}
        app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
            client.app = app  # type: ignore[attr-defined]
            yield client, received
        await app.state.voicefleet.aclose()


@pytest.mark.usefixtures("patient")
async def test_the_edges_late_end_reaches_the_ended_webhook_and_the_usage_of_the_app(
        api: tuple[httpx.AsyncClient, list[tuple[float, dict[str, Any]]]]) -> None:
    """The dispatcher as it runs: the session's bot's `ended` on its timeline, then the edge's
    `POST /sessions/{id}/sip_end` a second later, with its credential and its count. The webhook and
    `GET /usage` (the rollups, added once as the session ends, never again) carry the edge's count."""
    client, received = api
    state = client.app.state.voicefleet  # type: ignore[attr-defined]
    who = state.auth.identify(None)  # a keyless dispatcher's one caller
    session_id = state.sessions.session_id_for(who.owner_key, None)
    state.sessions.listing.opened(session_id, who, "default", "exotel")  # whose key its usage is filed under
    for event in call(sip=True):
        state.sessions.timeline.note(session_id, event.pop("event"), **event)
    await asyncio.sleep(1.0)
    told = await client.post(f"/sessions/{session_id}/sip_end", json=EDGE_END, headers=EDGE)
    assert told.status_code == 204, told.text
    assert await within(lambda: any(e["type"] == "session.ended" for _, e in received), timeout=15)
    ended = next(e for _, e in received if e["type"] == "session.ended")["data"]
    assert ended["sip"]["by"] == "edge" and ended["cost"]["telephony"]["seconds"] == 90.0, ended
    await state.usage.settled()
    usage = await client.get("/usage")
    assert usage.status_code == 200, usage.text
    assert usage.json()["totals"]["telephony_usd"] == 0.9, usage.json()
    assert sip_end.counted_end(await state.sessions.timeline.read(session_id)) is not None


ANSWERED_OUT = {"event": "call_outcome", "at": T0 + 3, "outcome": "answered", "trunk": "twilio"}


@pytest.mark.parametrize(("events", "awaited"), [
    (call(sip=True), True),  # the edge's priced inbound call, answered
    ([*call(sip=True), {"event": "sip_ended", "at": T0 + 63, **EDGE_END}], False),  # its count is in
    ([*call(sip=True), {"event": "sip_ended", "at": T0 + 63, "by": "caller", "how": "bye"}], True),  # a bare end
    # The bot's `joined` is not the edge's word: without it the edge's count is waited for all the same...
    ([e for e in call(sip=True) if e["event"] != "joined"], True),
    # ...and an end the edge told before any answer (a CANCEL, its refusal) has nothing to count.
    ([*call(sip=True), {"event": "sip_ended", "at": T0 + 63, "by": "caller", "how": "cancel", "status": 487}], False),
    ([*call(sip=True), {"event": "sip_ended", "at": T0 + 63, "by": "edge", "how": "refused", "status": 503}], False),
    ([*call(sip=True), {"event": "sip_ended", "at": T0 + 63, "by": "edge", "how": "failed"}], False),  # never answered
    ([*call(sip=False), ANSWERED_OUT], True),  # a call the edge placed through a trunk, answered
    ([*call(sip=False), {**ANSWERED_OUT, "outcome": "busy"}], False),
    ([*call(sip=False), {"event": "call_outcome", "at": T0 + 3, "outcome": "answered", "carrier": "twilio"}], False),
    (call(sip=False), False),  # no SIP call
    # An unpriced inbound call its edge started with its credential: marked so, its end awaited as a priced one's.
    ([*call(sip=False)[:2], {"event": "sip_inbound", "at": T0 + 1}, *call(sip=False)[2:]], True),
    ([*call(sip=False), {"event": "sip_inbound", "at": T0 + 1}, {"event": "sip_ended", "at": T0 + 63, **EDGE_END}],
     False),
])
def test_which_sessions_ends_wait_for_the_edges(events: list[dict[str, Any]], awaited: bool) -> None:
    assert sip_end.awaits_edge_end(events) is awaited


async def test_an_end_told_again_and_again_adds_one_usage_and_leaves_room_for_every_other_sessions(
        api: tuple[httpx.AsyncClient, list[tuple[float, dict[str, Any]]]]) -> None:
    """A SIP call's `ended` recorded 1,200 times while its edge's count is awaited (a bot that reported it in a
    loop): one addition waits for the count, not 1,200 filling the replica's queue (MAX_PENDING) so that another
    key's session ending meanwhile goes uncounted."""
    client, _ = api
    state = client.app.state.voicefleet  # type: ignore[attr-defined]
    who = state.auth.identify(None)
    looped, other = (state.sessions.session_id_for(who.owner_key, None) for _ in range(2))
    for session_id in (looped, other):
        state.sessions.listing.opened(session_id, who, "default", "exotel")
    for event in call(sip=True)[:-1]:
        state.sessions.timeline.note(looped, event.pop("event"), **event)
    for n in range(1200):
        state.sessions.timeline.note(looped, "ended", reason="completed")
        if n % 50 == 0:
            await asyncio.sleep(0.01)  # as reports come, over time: the timeline's own writes keep up
    for event in call(sip=False):
        state.sessions.timeline.note(other, event.pop("event"), **event)
    await state.usage.settled()
    usage = await client.get("/usage")
    assert usage.status_code == 200, usage.text
    assert usage.json()["totals"]["sessions"] == 2, usage.json()


async def test_an_end_long_past_waits_for_no_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait is counted from the session's `ended`, not from whoever looks: a webhook first looked at a
    minute after the end (a deliverer that was down), or a sweep of left-over sessions' reports and usage, goes
    at once with what it has, not a full wait each."""
    monkeypatch.setattr(sip_end, "EDGE_END_WAIT_SECONDS", 30.0)
    received: list[tuple[float, dict[str, Any]]] = []
    timelines = {"sip": call(sip=True, ended=time.time() - 60)}
    async with hook_receiver(receiving(received)) as url:
        hooks = deliverer(url, timelines)
        hooks.timeline_event("sip", timelines["sip"][-1])
        assert await within(lambda: hooks.delivered == 1, timeout=10)  # not put off for 30 s
        await hooks.aclose()
    [(_, ended)] = received
    assert "sip" not in ended["data"] and ended["data"]["cost"]["telephony"]["seconds"] == 60.0
    reads: list[str] = []

    async def read(session_id: str) -> list[dict[str, Any]]:
        reads.append(session_id)
        return timelines["sip"]

    assert await sip_end.with_edge_end(read, "sip", asyncio.Event()) == timelines["sip"]
    assert reads == ["sip"]  # read once: nothing left to wait for


@pytest.mark.parametrize(("ended", "deadline"), [
    (1_000.0, 1_005.0),  # the session ended 1,000 s ago: its wait ran out long since
    (1_998.0, 2_003.0),  # 2 s ago: 3 s left
    (2_010.0, 2_005.0),  # the replica that wrote it runs its clock 10 s ahead: 5 s from now at most
    (None, 2_005.0),  # no `ended` (yet): 5 s from now
])
def test_the_edges_end_is_waited_for_until_5_s_past_the_sessions_end(ended: float | None, deadline: float) -> None:
    events: list[dict[str, Any]] = [{"event": "requested", "at": 900.0}]
    if ended is not None:
        events += [{"event": "ended", "at": ended}, {"event": "ended", "at": ended + 30}]  # the first end counts
    assert sip_end.edge_end_deadline(events, 2_000.0) == deadline
