"""The caller's offer is posted without loading the CA bundle again: a new TLS context per offer
cost 17-40 ms of the caller's CPU before every offer left, on the way to the first audio (a
browser's fetch pays nothing of the kind), and a busy load generator paid it once per call."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from voicefleet.loadtest.webrtc import post_json


@pytest.fixture
async def answering_url() -> AsyncIterator[str]:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"sdp": "v=0", "type": "answer", "got": (await request.json())["n"]})

    app = web.Application()
    app.router.add_post("/api/offer", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}/api/offer"
    await runner.cleanup()


async def test_offers_posted_one_after_another_load_the_ca_bundle_at_most_once(
        answering_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    loads = []
    original = ssl.SSLContext.load_verify_locations

    def counted(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loads.append(args)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    answers = [await post_json(answering_url, {"n": n}) for n in range(3)]
    assert [answer["got"] for answer in answers] == [0, 1, 2]
    assert len(loads) <= 1, f"the CA bundle was loaded {len(loads)} times for 3 offers"
