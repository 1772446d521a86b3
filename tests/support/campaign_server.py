"""A real dispatcher app on a loopback port with its campaign worker, Twilio the strict fake: what the campaign
CLI and the dashboard's campaigns are tested against (the test plays each far end through the fake)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx

from dispatcher.app import create_app
from dispatcher.campaigns.worker import CampaignWorker
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from tests.dispatcher.phone.placed_calls import calls_allowed
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN
from tests.fakes.twilio_outbound import FakeTwilioCalls
from tests.support.dispatcher_server import serving


@contextlib.asynccontextmanager
async def campaigns_served(twilio: FakeTwilioCalls, caller_id: str, settings: Settings | None = None,
                           callers: str = "local") -> AsyncIterator[str]:
    """The app's base URL; `callers` (key names, or an admin key's id) may call out as `caller_id`."""
    env = {"TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "TWILIO_API_URL": twilio.url,
           "PHONE_PUBLIC_URL": "https://calls.example.com", "TWILIO_CALLS_PER_SECOND": "20",
           **calls_allowed("twilio", (caller_id,), caller=callers)}
    app = create_app(settings or Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    state = app.state.voicefleet
    twilio.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app))
    worker = asyncio.create_task(CampaignWorker(state, state.campaigns, lease_seconds=10.0, poll_seconds=0.05,
                                                watch_seconds=0.05).run())
    async with serving(app) as port:
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            worker.cancel()
            await asyncio.gather(worker, return_exceptions=True)
            await state.aclose()
