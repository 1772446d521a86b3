"""The dispatcher's own Daily webhook route (dispatcher/api/routers/daily_webhooks.py) served alone, over the real
`DailyHooks` and a key, for tests that drive a warm transfer without a whole dispatcher: the Daily fake posts its
signed `dialout.*` events here as it does to a deployed dispatcher. `region_app`: the same route as one region of
several serves it, behind the regions' own middleware (a relayed request's signature checked, once) and with the
real relay of another region's dial-out events (dispatcher/phone/daily_hook_relay.py)."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from dispatcher.api.error_handlers import install_error_handlers
from dispatcher.api.limits import replaying
from dispatcher.api.region_relay import RegionRelayMiddleware
from dispatcher.api.routers import daily_webhooks
from dispatcher.phone.daily_calltransfer import DailyCallTransfers
from dispatcher.phone.daily_hook_relay import WEBHOOK_PATH, DailyHookRelay
from dispatcher.phone.daily_legs import DailyHooks
from dispatcher.phone.daily_signature import webhook_key
from dispatcher.regions.config import Regions
from dispatcher.store.memory import LocalOnce
from tests.fakes.daily import FakeDaily

SECRET = "dm9pY2VmbGVldC10ZXN0LWRhaWx5LXdlYmhvb2stc2VjcmV0IQ=="  # BASE-64, as Daily's `hmac` is
URL = "https://dispatcher.example.com/phone/daily/webhook"


async def hooked(daily: FakeDaily, hooks: DailyHooks, secret: str = SECRET) -> FastAPI:
    """`daily`'s webhook pointed at the route, which checks `secret` and hands what it heard to `hooks`."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(daily_webhooks.router)
    settings = SimpleNamespace(daily_webhook_key=webhook_key(secret))
    app.state.voicefleet = SimpleNamespace(phone=SimpleNamespace(settings=settings, daily_hooks=hooks,
                                                                 daily_relay=None, daily_calltransfers=None))
    daily.deliver = lambda: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), timeout=10)
    await daily.subscribe(URL, secret, retry_type="exponential")  # as docs/phone.md creates it
    return app


Received = list[tuple[dict[str, str], bytes]]  # (headers, body) of each request, as it came


class _Keep:
    """Every request that reaches a region's webhook route kept as it came: what Daily or another region sent."""

    def __init__(self, app: ASGIApp, into: Received) -> None:
        self.app, self.requests = app, into

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH:
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body", False):
                    break
            self.requests.append(({k.decode(): v.decode() for k, v in scope["headers"]}, body))
            receive = replaying(body, receive)
        await self.app(scope, receive, send)


def region_app(hooks: DailyHooks, regions: Regions, relay: DailyHookRelay | None,
               secret: str = SECRET, calltransfers: DailyCallTransfers | None = None) -> tuple[FastAPI, Received]:
    """Region `regions.here`'s webhook route, as `hooked` serves it, behind the regions' middleware (with its
    `calltransfers`: Daily's calltransfer events of its own sessions); what reached it, in the list returned."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(daily_webhooks.router)
    settings = SimpleNamespace(daily_webhook_key=webhook_key(secret))
    state = SimpleNamespace(phone=SimpleNamespace(settings=settings, daily_hooks=hooks, daily_relay=relay,
                                                  daily_calltransfers=calltransfers),
                            peers=SimpleNamespace(regions=regions), channel_access=None,
                            replication=SimpleNamespace(coordination=SimpleNamespace(spent=LocalOnce())))
    app.state.voicefleet = state
    app.add_middleware(RegionRelayMiddleware, state=state)  # type: ignore[arg-type]
    received: Received = []
    app.add_middleware(_Keep, into=received)  # outermost: each request as it came, before any check
    return app, received
