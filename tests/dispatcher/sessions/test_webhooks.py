"""Lifecycle webhooks: signed the Standard Webhooks way (checked with its reference library), retried
until the receiver takes them, and never in a start's way."""

from __future__ import annotations

import asyncio
import base64
import math
import time
from collections import Counter
from datetime import datetime

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.sessions import webhooks
from dispatcher.sessions.machine_end_grace import MachineEndGrace
from dispatcher.sessions.timeline import MAX_PENDING, SessionTimeline
from dispatcher.sessions.webhook_outbox import MemoryOutbox
from dispatcher.sessions.webhooks import LifecycleWebhooks, WebhookSettings, secret_key
from dispatcher.settings import Settings, SettingsError
from dispatcher.store.handed_over_ends import MemoryHandedOverEnds
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import in_process
from tests.support.hook_receiver import hook_receiver
from tests.support.ports import free_port
from tests.support.waiting import within

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def verified_into(received: list[dict]):
    """A receiver that checks each event's signature and keeps it in `received`."""
    async def hook(request: web.Request) -> web.Response:
        received.append(Webhook(SECRET).verify(await request.read(), dict(request.headers)))
        return web.Response(status=204)

    return hook


def app_with(url: str, **more: str):
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, bot_env=STANDIN_ENV))
    env = {"WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET, "RESERVE_MAX_IDLE": "0", **more}
    return create_app(Settings(), env=env, machines=machines, rooms=None)


async def test_a_sessions_lifecycle_is_pushed_signed_and_a_500_is_retried(standin_mode):
    standin_mode("pipeline-error")  # started, ready, then its pipeline fails and it ends
    received: list[dict] = []
    attempts: Counter[str] = Counter()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        attempts[request.headers["webhook-id"]] += 1
        if attempts[request.headers["webhook-id"]] == 1:
            return web.Response(status=500)  # each event's first attempt fails
        received.append(Webhook(SECRET).verify(body, dict(request.headers)))  # raises on a bad signature
        return web.Response(status=204)

    async with hook_receiver(hook) as url, in_process(app_with(url)) as running:
        start = await running.client.post("/start", json={})
        assert start.status_code == 201
        session_id = start.json()["session_id"]
        assert await within(lambda: {e["type"] for e in received} >= {"session.started", "session.ready",
                                                                    "session.ended"}, timeout=30)
    by_type = {event["type"]: event for event in received}
    assert all(event["data"]["session_id"] == session_id for event in received)
    assert by_type["session.ended"]["data"]["reason"] == "error"
    assert by_type["session.ended"]["data"]["duration_seconds"] >= 0
    assert set(attempts.values()) == {2}  # one retry each, then delivered once
    assert set(attempts) == {f"msg_{session_id}_{kind}" for kind in by_type}  # ids a receiver dedupes by


async def test_a_bots_forged_report_time_is_not_the_ended_events_time_nor_its_duration(standin_mode):
    """A hostile bot reports `ended` at NaN, then ten years ahead: the NaN made the session's webhook
    fail at every attempt, the future time was signed as the event's `timestamp` with a
    `duration_seconds` of 315 million. The dispatcher's own clock times both."""
    standin_mode("forged-times")
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(Webhook(SECRET).verify(await request.read(), dict(request.headers)))
        return web.Response(status=204)

    async with hook_receiver(hook) as url, in_process(app_with(url)) as running:
        began = time.time()
        start = await running.client.post("/start", json={})
        assert start.status_code == 201
        assert await within(lambda: any(e["type"] == "session.ended" for e in received), timeout=30), received
        finished = time.time()
        webhooks = running.state.sessions.timeline.listeners[0].__self__
        assert webhooks.given_up == 0
    ended = next(e for e in received if e["type"] == "session.ended")
    assert ended["data"]["session_id"] == start.json()["session_id"]
    assert began <= ended["data"]["at"] <= finished + 0.001
    occurred = datetime.fromisoformat(ended["timestamp"].replace("Z", "+00:00")).timestamp()
    assert abs(occurred - ended["data"]["at"]) < 0.001
    assert 0 <= ended["data"]["duration_seconds"] <= finished - began


async def test_a_receiver_that_is_down_delays_no_start():
    app = app_with(f"http://127.0.0.1:{free_port()}/hooks")  # nothing listens there
    async with in_process(app) as running:
        start = await running.client.post("/start", json={})
        assert start.status_code == 201
        webhooks = running.state.sessions.timeline.listeners[0].__self__
        # Answered while its webhook is still being tried: a start never waits for one.
        assert webhooks.delivered == 0 and webhooks.dropped == 0


@pytest.mark.parametrize(("env", "message"), [
    ({"WEBHOOK_URL": "https://hooks.example.com/x"}, "set together"),
    ({"WEBHOOK_URL": "ftp://x", "WEBHOOK_SECRET": SECRET}, "is not an http"),
    ({"WEBHOOK_URL": "https://hooks.example.com/x", "WEBHOOK_SECRET": "whsec_c2hvcnQ="}, "at least 24"),
])
def test_bad_webhook_settings_are_refused_with_the_variable_named(env, message):
    with pytest.raises(SettingsError, match=message):
        WebhookSettings.from_env(env)


def test_no_url_no_webhooks():
    assert WebhookSettings.from_env({}) is None


async def test_a_slow_receiver_delays_no_start_and_gets_every_event(standin_mode):
    """A receiver slower than WEBHOOK_TIMEOUT_SECONDS: each event's first attempt times out while the
    start has long answered; the retries deliver every event, once verified each."""
    standin_mode("pipeline-error")  # started, ready, then its pipeline fails and it ends
    held, received = Counter(), []
    release = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        held[request.headers["webhook-id"]] += 1
        if held[request.headers["webhook-id"]] == 1:
            await release.wait()  # the first attempt of each: longer than the dispatcher waits
        received.append(Webhook(SECRET).verify(body, dict(request.headers)))
        return web.Response(status=204)

    # An attempt's timeout far above what a start takes on a loaded machine (1-2 s at load 13): a start
    # that waited on one would take all of it.
    timeout = 5.0
    async with hook_receiver(hook) as url, in_process(app_with(url, WEBHOOK_TIMEOUT_SECONDS=str(timeout))) as running:
        began = time.monotonic()
        start = await running.client.post("/start", json={})
        answered = time.monotonic() - began
        assert start.status_code == 201
        session_id = start.json()["session_id"]
        # Its session.started is in the receiver's hands, unanswered: the start did not wait for it.
        assert await within(lambda: held[f"msg_{session_id}_session.started"] == 1, timeout=10)
        assert not received
        assert answered < timeout, answered  # under the attempt's timeout: it never waited on one
        types = {"session.started", "session.ready", "session.ended"}
        assert await within(lambda: {e["type"] for e in received} >= types, timeout=60), (received, held)
        release.set()
    assert {e["data"]["session_id"] for e in received} == {session_id}
    assert all(held[f"msg_{session_id}_{kind}"] >= 2 for kind in types)  # each retried after its timeout


async def test_a_failed_start_is_pushed_as_session_failed(standin_mode):
    standin_mode("fail-start")  # the bot exits before it is ready: `?wait=started` answers an error
    received: list[dict] = []
    async with hook_receiver(verified_into(received)) as url, in_process(app_with(url)) as running:
        start = await running.client.post("/start?wait=started", json={})
        assert start.status_code >= 400
        failure = start.json()["error"]
        assert await within(lambda: any(e["type"] == "session.failed" for e in received), timeout=30)
    failed = next(e for e in received if e["type"] == "session.failed")
    assert failed["data"]["session_id"] == failure["session_id"]
    assert (failed["data"]["code"], failed["data"]["message"]) == (failure["code"], failure["message"])
    # When it occurred, as the Standard Webhooks payload structure recommends: ISO 8601, UTC.
    occurred = datetime.fromisoformat(failed["timestamp"].replace("Z", "+00:00"))
    assert failed["timestamp"].endswith("Z") and abs(occurred.timestamp() - failed["data"]["at"]) < 0.001


async def test_every_session_event_says_whether_its_session_is_an_evals(standin_mode):
    standin_mode("pipeline-error")  # started, ready, then its pipeline fails and it ends
    received: list[dict] = []
    async with hook_receiver(verified_into(received)) as url, in_process(app_with(url)) as running:
        evaluated = (await running.client.post("/start", json={"eval": True})).json()["session_id"]
        called = (await running.client.post("/start", json={})).json()["session_id"]
        assert await within(lambda: sum(e["type"] == "session.ended" for e in received) == 2, timeout=30)
    marks = {(e["data"]["session_id"], e["type"]): e["data"].get("eval") for e in received}
    for kind in ("session.started", "session.ready", "session.ended"):
        assert (marks[(evaluated, kind)], marks[(called, kind)]) == (True, False), marks


def lone_webhooks(url: str, max_queue: int = 1_000) -> LifecycleWebhooks:
    """The deliverer alone, on this replica's memory (as without a store)."""
    async def no_timeline(session_id: str) -> list[dict]:
        return []

    return LifecycleWebhooks(WebhookSettings(url, secret_key(SECRET), timeout_seconds=2.0, max_queue=max_queue),
                             no_timeline, MemoryOutbox())


async def test_an_event_is_given_up_after_its_retries_counted_and_logged(monkeypatch, caplog):
    monkeypatch.setattr(webhooks, "RETRY_DELAYS_SECONDS", (0.01,) * 6)  # the schedule's length, not its waits
    attempts: Counter[str] = Counter()

    async def hook(request: web.Request) -> web.Response:
        attempts[request.headers["webhook-id"]] += 1
        return web.Response(status=500)

    async with hook_receiver(hook) as url:
        hooks = lone_webhooks(url)
        hooks.timeline_event("s1", {"event": "ended", "at": time.time(), "reason": "peer_left"})
        assert await within(lambda: hooks.given_up == 1, timeout=30)
        await asyncio.sleep(0.3)  # nothing more is tried
        await hooks.aclose()
    assert attempts == {"msg_s1_session.ended": 7}  # the first and six retries
    assert (hooks.delivered, hooks.dropped) == (0, 0)
    assert "webhook msg_s1_session.ended (session.ended) not delivered after 7 attempts: answered 500" in caplog.text


@pytest.mark.parametrize("at", [float("nan"), float("inf"), 1e20])
async def test_an_event_queued_with_a_time_no_date_holds_is_delivered_without_one(at):
    """A time that is no date (an event an earlier version queued from a bot's report): sent with no
    `timestamp` and no duration rather than failing at every attempt, its entry never leaving."""
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(Webhook(SECRET).verify(await request.read(), dict(request.headers)))
        return web.Response(status=204)

    async with hook_receiver(hook) as url:
        hooks = lone_webhooks(url)
        hooks.timeline_event("s1", {"event": "ended", "at": at, "reason": "peer_left"})
        assert await within(lambda: hooks.delivered == 1, timeout=10)
        await hooks.aclose()
    [ended] = received
    assert (ended["type"], ended["timestamp"], ended["data"]["duration_seconds"]) == ("session.ended", None, None)
    assert ended["data"]["at"] == at if math.isfinite(at) else "at" not in ended["data"]  # strict JSON has no NaN


async def test_a_memory_outbox_entry_past_its_time_is_dropped_as_the_stores_is(caplog):
    outbox = MemoryOutbox()
    now = time.time()
    for message_id, expires in (("old", now - 1), ("nan", float("nan")), ("alive", now + 60)):
        assert await outbox.put(message_id, {"kind": "session.ended", "data": {}, "attempts": 0, "expires": expires},
                                now, limit=3, keep_seconds=60)
    assert [m for m, _ in await outbox.claim(now, 5, 10)] == ["alive"]
    # Dropped, not merely skipped: the limit has room again.
    assert await outbox.put("new", {"kind": "session.ended", "data": {}, "attempts": 0, "expires": now + 60},
                            now, limit=2, keep_seconds=60)
    assert "webhook old dropped" in caplog.text


async def test_past_its_bound_an_event_is_dropped_counted_and_logged(caplog):
    release = asyncio.Event()
    delivered: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        await release.wait()
        delivered.append(request.headers["webhook-id"])
        return web.Response(status=204)

    async with hook_receiver(hook) as url:
        hooks = lone_webhooks(url, max_queue=2)
        for session in ("s1", "s2", "s3"):
            hooks.timeline_event(session, {"event": "ready", "at": time.time()})
            await asyncio.sleep(0.05)  # each written before the next
        assert await within(lambda: hooks.dropped == 1, timeout=10)
        release.set()
        assert await within(lambda: hooks.delivered == 2, timeout=10)
        await hooks.aclose()
    assert sorted(delivered) == ["msg_s1_session.ready", "msg_s2_session.ready"]
    assert "webhook msg_s3_session.ready dropped (2 waiting)" in caplog.text


async def test_a_store_slow_to_take_the_timeline_loses_no_webhook():
    """The timeline bounds its pending writes; its listeners (the webhooks) are told each event all the
    same, and bound their own queue."""
    class StalledTimelines:  # a store that takes writes and never answers
        async def append(self, session_id: str, record: dict) -> None:
            await asyncio.Event().wait()

    told: list[tuple[str, str]] = []
    timeline = SessionTimeline(StalledTimelines(), "r1")  # type: ignore[arg-type]
    timeline.listeners.append(lambda session_id, record: told.append((session_id, record["event"])))
    for n in range(MAX_PENDING):
        timeline.note(f"s{n}", "joined")
    timeline.note("s0", "ended", reason="peer_left")  # past the timeline's bound
    assert told[-1] == ("s0", "ended")
    for task in list(timeline._pending):
        task.cancel()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_receiver_that_redirects_gets_no_event_sent_on_to_where_it_points(status, caplog):
    """A receiver's 3xx (a compromised receiver, an open redirect on its host, its DNS) must not make the
    deliverer POST the signed event to an address of the redirect's choosing (here a second real server
    standing for a metadata endpoint): the redirect is a failed attempt, retried at the same URL. The deliverer
    alone, as the app runs it: a session's events reaching it from the timeline (a started session's with real
    bots: test_a_sessions_lifecycle_is_pushed_signed_and_a_500_is_retried)."""
    elsewhere: list[str] = []
    attempts: list[str] = []

    async def internal(request: web.Request) -> web.Response:
        elsewhere.append(f"{request.method} {request.path} {request.headers.get('webhook-id')}")
        return web.Response(status=204)

    async with hook_receiver(internal, method="*") as internal_url:  # a 301/302 is followed with a GET
        async def hook(request: web.Request) -> web.Response:
            attempts.append(request.headers["webhook-id"])
            return web.Response(status=status, headers={"Location": internal_url})

        async with hook_receiver(hook) as url:
            hooks = lone_webhooks(url)
            hooks.timeline_event("s1", {"event": "launched", "at": time.time()})
            # The first attempt and its retry a second later, both at WEBHOOK_URL.
            assert await within(lambda: attempts.count("msg_s1_session.started") >= 2, timeout=30), attempts
            await hooks.aclose()
            assert hooks.delivered == 0
    assert elsewhere == []


async def test_a_sessions_recording_outcome_is_pushed_signed():
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(Webhook(SECRET).verify(await request.read(), dict(request.headers)))
        return web.Response(status=204)

    async with hook_receiver(hook) as url:
        hooks = lone_webhooks(url)
        hooks.timeline_event("s1", {"event": "recording_partial", "at": time.time(), "reason": "killed",
                                    "seconds": 12.5})
        hooks.timeline_event("s2", {"event": "recording_ready", "at": time.time(), "seconds": 30.0})
        hooks.timeline_event("s3", {"event": "recording_off", "at": time.time()})  # on the timeline only
        assert await within(lambda: hooks.delivered == 2, timeout=10)
        await hooks.aclose()
    by_type = {event["type"]: event["data"] for event in received}
    partial = by_type["session.recording.partial"]
    assert partial == {"session_id": "s1", "at": partial["at"], "reason": "killed", "seconds": 12.5, "eval": False}
    assert by_type["session.recording.ready"]["session_id"] == "s2"


async def test_a_bot_gone_without_its_end_is_pushed_as_session_ended_with_the_cost_every_view_reads(standin_mode):
    standin_mode("crash")  # ready, then its process exits without its `ended` report (as a killed bot)
    received: list[dict] = []
    async with hook_receiver(verified_into(received)) as url, in_process(app_with(url)) as running:
        start = await running.client.post("/start?wait=started", json={})
        session_id = start.json()["session_id"]
        assert await within(lambda: any(e["type"] == "session.ended" for e in received), timeout=30)
        ended = next(e for e in received if e["type"] == "session.ended")["data"]
        # A stop long after the machine's end adds nothing to what the session cost.
        await asyncio.sleep(1.0)
        assert (await running.client.delete(f"/sessions/{session_id}")).status_code in (202, 204, 404)
        read = (await running.client.get(f"/sessions/{session_id}")).json()
    assert ended["reason"] == "machine_ended" and ended["session_id"] == session_id
    assert ended["cost"]["estimated"] is True
    assert read["cost"]["session_seconds"] == ended["cost"]["session_seconds"], (read["cost"], ended["cost"])
    assert [e["type"] for e in received].count("session.ended") == 1


async def test_a_bots_end_after_its_machines_end_was_pushed_is_not_pushed_again():
    received: list[tuple[str, str]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers["webhook-id"], (await request.json())["data"].get("reason")))
        return web.Response(status=204)

    async with hook_receiver(hook) as url:
        hooks = lone_webhooks(url)
        await hooks.machine_ended("s1", {"event": "machine_ended", "at": time.time(), "state": "ended"})  # grace over
        assert await within(lambda: len(received) == 1, timeout=30)
        # The bot's own end comes late (a child process that kept its channel), after a recording's.
        hooks.timeline_event("s1", {"event": "ended", "at": time.time(), "reason": "peer_left"})
        assert await within(lambda: not hooks._puts, timeout=30)  # its end looked at (and queued, were it pushed)
        hooks.timeline_event("s1", {"event": "recording_partial", "at": time.time()})
        assert await within(lambda: any(i == "msg_s1_session.recording.partial" for i, _ in received), timeout=30)
        await hooks.aclose()
    assert [r for r in received if r[0] == "msg_s1_session.ended"] == [("msg_s1_session.ended", "machine_ended")]


async def test_a_machines_end_whose_timeline_read_fails_once_is_read_again_and_pushed(monkeypatch):
    monkeypatch.setattr(webhooks, "READ_BACKOFF_SECONDS", 0.01)
    received: list[str] = []
    reads = Counter[str]()

    async def hook(request: web.Request) -> web.Response:
        received.append(request.headers["webhook-id"])
        return web.Response(status=204)

    async def blinking_timeline(session_id: str) -> list[dict]:
        reads[session_id] += 1
        if reads[session_id] == 1:
            raise ConnectionError("the store blinked")
        return []

    async with hook_receiver(hook) as url:
        hooks = LifecycleWebhooks(WebhookSettings(url, secret_key(SECRET), timeout_seconds=2.0), blinking_timeline,
                                  MemoryOutbox())
        await hooks.machine_ended("s1", {"event": "machine_ended", "at": time.time(), "state": "failed"})
        assert await within(lambda: received == ["msg_s1_session.ended"], timeout=30), received
        await hooks.aclose()


async def test_a_call_handed_to_a_person_is_pushed_signed_as_session_transferred():
    received: list[dict] = []
    async with hook_receiver(verified_into(received)) as url:
        hooks = lone_webhooks(url)
        hooks.timeline_event("s1", {"event": "transferred", "at": time.time(), "to": "+14155550123",
                                    "mode": "cold", "carrier": "twilio", "carrier_status": "in-progress"})
        assert await within(lambda: hooks.delivered == 1, timeout=10)
        await hooks.aclose()
    assert received[0]["type"] == "session.transferred"
    assert {k: received[0]["data"][k] for k in ("session_id", "to", "mode", "carrier_status")} == {
        "session_id": "s1", "to": "+14155550123", "mode": "cold", "carrier_status": "in-progress"}


async def test_a_machines_end_still_in_its_grace_at_the_close_reaches_the_outbox():
    # One process (no store to hand it over to) stopped within the grace of a machine's end: its
    # `session.ended` is looked at and written to the outbox by the close (it was lost with the process).
    outbox = MemoryOutbox()

    async def no_timeline(session_id: str) -> list[dict]:
        return []

    hooks = LifecycleWebhooks(WebhookSettings("http://127.0.0.1:9/hook", secret_key(SECRET), timeout_seconds=2.0),
                              no_timeline, outbox)
    grace = MachineEndGrace(no_timeline, MemoryHandedOverEnds())
    grace.finalisers.append(hooks.machine_ended)
    grace.timeline_event("s1", {"event": "machine_ended", "at": time.time(), "state": "ended"})
    await asyncio.sleep(0)  # its grace has begun
    await grace.aclose()
    await hooks.aclose()
    assert [message_id for message_id, _ in await outbox.claim(time.time() + 60, 30, 10)] == ["msg_s1_session.ended"]
