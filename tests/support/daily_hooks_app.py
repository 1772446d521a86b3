"""The dispatcher's own Daily webhook route (dispatcher/api/routers/daily_webhooks.py) served alone, over the real
`DailyHooks` and a key, for tests that drive a warm transfer without a whole dispatcher: the Daily fake posts its
signed `dialout.*` events here as it does to a deployed dispatcher."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
from fastapi import FastAPI

from dispatcher.api.error_handlers import install_error_handlers
from dispatcher.api.routers import daily_webhooks
from dispatcher.phone.daily_legs import DailyHooks
from dispatcher.phone.daily_signature import webhook_key
from tests.fakes.daily import FakeDaily

SECRET = "dm9pY2VmbGVldC10ZXN0LWRhaWx5LXdlYmhvb2stc2VjcmV0IQ=="  # BASE-64, as Daily's `hmac` is
URL = "https://dispatcher.example.com/phone/daily/webhook"


async def hooked(daily: FakeDaily, hooks: DailyHooks, secret: str = SECRET) -> FastAPI:
    """`daily`'s webhook pointed at the route, which checks `secret` and hands what it heard to `hooks`."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(daily_webhooks.router)
    settings = SimpleNamespace(daily_webhook_key=webhook_key(secret))
    app.state.voicefleet = SimpleNamespace(phone=SimpleNamespace(settings=settings, daily_hooks=hooks))
    daily.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=10)
    await daily.subscribe(URL, secret, retry_type="exponential")  # as docs/phone.md creates it
    return app
