"""Two replicas on a real redis-server: one closes within a machine's end's grace and hands the pending end to
the store; its bot never reports, and the other replica's sweep (run while it serves) finalises it once the grace
is over: the session is in the usage once, and `session.ended` is pushed once, as the machine's end."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import web
from fastapi import FastAPI
from standardwebhooks.webhooks import Webhook

from dispatcher.app import create_app
from dispatcher.sessions import machine_end_grace
from dispatcher.settings import Settings
from dispatcher.wiring import running
from tests.dispatcher.sessions.test_reaper_retries import ListedMachines
from tests.dispatcher.sessions.test_webhooks import SECRET
from tests.support.hook_receiver import hook_receiver
from tests.support.redis_server import RedisServer, redis_server
from tests.support.waiting import within

SESSION = "grace-handed-over-1"
PATIENT = 60.0  # far past the grace and a sweep, however busy the machine


def replica(store: RedisServer, url: str) -> FastAPI:
    env = {**store.env, "WEBHOOK_URL": url, "WEBHOOK_SECRET": SECRET}
    return create_app(Settings(reaper_interval_seconds=0), env=env, machines=ListedMachines([]), rooms=None)


async def sessions_counted(app: FastAPI) -> float:
    today = datetime.now(UTC).date()
    grouped = await app.state.voicefleet.usage.rollups.grouped(today, today, "key", None)
    return grouped.get("", {}).get("sessions", 0.0)


async def test_a_closing_replicas_pending_end_is_finalised_once_by_another_after_its_grace(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Its close must come within the grace: 3 s was not enough on a busy machine (load 5-6), whose close then came
    # after the grace and finalised the end itself. The rule is the same at 10 s.
    monkeypatch.setattr(machine_end_grace, "MACHINE_END_GRACE_SECONDS", 10.0)
    received: list[dict] = []

    async def hook(request: web.Request) -> web.Response:
        received.append(Webhook(SECRET).verify(await request.read(), dict(request.headers)))
        return web.Response(status=204)

    with redis_server(tmp_path) as store:
        async with hook_receiver(hook) as url:
            closing, other = replica(store, url), replica(store, url)
            async with running(other.state.voicefleet):  # B serves, its sweep running
                timeline = closing.state.voicefleet.sessions.timeline
                timeline.note(SESSION, "requested", release="stable")
                timeline.note(SESSION, "launched", machine_id="m-1")
                timeline.note(SESSION, "machine_ended", at=time.time(), state="ended")  # its bot never reports
                await timeline.settled()
                await closing.state.voicefleet.aclose()  # A stops within the grace: handed over, not finalised
                handed = store.admin().keys("*machine-ends:handed-over")
                ended = [e for e in received if e["type"] == "session.ended"]
                assert handed and ended == [], (handed, ended)
                assert await within(lambda: any(e["type"] == "session.ended" for e in received), timeout=PATIENT)
                assert await within(lambda: sessions_counted(other), timeout=PATIENT) == 1
                assert await within(lambda: store.admin().zcard(handed[0]) == 0, timeout=PATIENT)
        assert [e["data"]["reason"] for e in received if e["type"] == "session.ended"] == ["machine_ended"]
        assert len(store.admin().keys("*usage:counted:*")) == 1  # the session, once
