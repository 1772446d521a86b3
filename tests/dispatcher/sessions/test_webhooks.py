"""Lifecycle webhooks: signed the Standard Webhooks way (checked with its reference library), retried
until the receiver takes them, and never in a start's way."""

from __future__ import annotations

import base64
from collections import Counter

import pytest
from aiohttp import web
from standardwebhooks.webhooks import Webhook

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.sessions.webhooks import WebhookSettings
from dispatcher.settings import Settings, SettingsError
from tests.dispatcher.conftest import STANDIN_BOT, STANDIN_ENV
from tests.support.dispatcher_server import in_process
from tests.support.hook_receiver import hook_receiver
from tests.support.ports import free_port
from tests.support.waiting import within

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def app_with(url: str):
    machines = LocalMachines(LocalSettings(bot_command=STANDIN_BOT, bot_env=STANDIN_ENV))
    env = {"WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET, "RESERVE_MAX_IDLE": "0"}
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
