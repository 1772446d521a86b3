"""A caller who hangs up (CANCEL) while the edge's `POST /start` is still on its way: the edge waits
for the answer, bounded, and stops the session it names, so no bot is left waiting for a stream
that will never open. A retried start carries its first try's Idempotency-Key."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from sipedge.call_flow import CallFlow, run_call
from sipedge.dispatcher_link import DispatcherLink
from sipedge.playout import Playout


class SlowDispatcher:
    """`POST /start` answers once `release` is set; `DELETE /sessions/{id}` is recorded."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.stopped: list[tuple[str, str | None]] = []
        self.keys: list[str | None] = []

    async def start(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("Idempotency-Key"))
        self.started.set()
        await self.release.wait()
        return web.json_response({"sessionId": "s-1", "token": "t-1", "wsUrl": "ws://127.0.0.1:9/ws"}, status=201)

    async def stop(self, request: web.Request) -> web.Response:
        self.stopped.append((request.match_info["session_id"], request.headers.get("Authorization")))
        return web.Response(status=204)


def dispatcher_app(fake: SlowDispatcher) -> web.Application:
    app = web.Application()
    app.router.add_post("/start", fake.start)
    app.router.add_delete("/sessions/{session_id}", fake.stop)
    return app


async def test_a_cancel_during_the_start_stops_the_session_its_answer_names() -> None:
    fake = SlowDispatcher()
    server = TestServer(dispatcher_app(fake), host="127.0.0.1")
    await server.start_server()
    link = DispatcherLink(str(server.make_url("")).rstrip("/"))
    flow = CallFlow(asyncio.get_running_loop(), Playout())
    answered: list[tuple[int, int | None]] = []
    body: dict[str, Any] = {"call_id": "c-1", "from": "a", "to": "b"}
    try:
        call = asyncio.create_task(run_call(flow, link, "key-1", body, lambda s, r: answered.append((s, r)),
                                            lambda: None, answer_seconds=5))
        await asyncio.wait_for(fake.started.wait(), 5)
        flow.caller_gone.set()  # the CANCEL, before the dispatcher answered
        await asyncio.sleep(0.1)
        assert not call.done()  # still waiting for the answer that names the session
        fake.release.set()
        await asyncio.wait_for(call, 5)
    finally:
        await link.close()
        await server.close()
    assert fake.stopped == [("s-1", "Bearer key-1")]
    assert answered == []  # PJSIP answered the CANCEL itself (487); nothing more is sent
    assert fake.keys[0] is not None and len(fake.keys[0]) >= 16
