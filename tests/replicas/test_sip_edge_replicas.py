"""A call placed through a SIP edge that never answered in time, retried at another replica: two real
`python -m dispatcher` processes on one real redis-server, and two edges' real control APIs
(tests/sip/test_several_edges.py: PJSIP not started, each order the edge takes noted). Edge A takes the call
and holds its answer past the dispatcher's wait, as an edge whose answer is lost: it may ring the callee. The
retry with the same Idempotency-Key at the other replica, whose SIP_EDGE_URL lists B first, places nothing
(dispatcher/api/call_order.py): it answers the call's session as it is, never asking B (the callee would be
rung twice) nor A again."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from sipedge import control
from tests.replicas.conftest import replica_env
from tests.sip.test_several_edges import CALL, EDGE_SECRET, RealEdge, real_edges
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow  # real dispatcher processes, and the dispatcher's whole wait for an edge (~12 s)

KEY = "vf_sip_edge_replicas_key_0123456789ab"
HEADERS = {"Authorization": f"Bearer {KEY}", "Idempotency-Key": "order-1042"}


class HeldAnswers:
    """Edge A's answers to `POST /calls` held until `release` (the edge takes the call first, as a real one
    whose answer is lost does); every hand-over it was asked, and whether it was held."""

    def __init__(self) -> None:
        self.edge: RealEdge | None = None
        self.released = asyncio.Event()
        self.asked: list[bool] = []  # one per request to A: True while held, False once released

    def wrap(self, calls: Callable[[control.Control, web.Request], Awaitable[web.StreamResponse]]) -> Callable[
            [control.Control, web.Request], Awaitable[web.StreamResponse]]:
        async def held_calls(api: control.Control, request: web.Request) -> web.StreamResponse:
            answer = await calls(api, request)
            if self.edge is not None and api.edge is self.edge.edge:
                self.asked.append(not self.released.is_set())
                await self.released.wait()
            return answer
        return held_calls


async def test_a_call_s_retry_at_another_replica_goes_to_the_edge_that_may_hold_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: RedisServer) -> None:
    held = HeldAnswers()
    monkeypatch.setattr(control.Control, "_calls", held.wrap(control.Control._calls))
    async with real_edges(tmp_path, monkeypatch, 2) as (a, b):
        held.edge = a
        with ExitStack() as stack:
            try:
                first, second = [await asyncio.to_thread(_replica, stack, tmp_path, store, name, edges)
                                 for name, edges in (("r-0", f"{a.url},{b.url}"), ("r-1", f"{b.url},{a.url}"))]
                async with httpx.AsyncClient(timeout=120, headers=HEADERS) as client:
                    unanswered = await client.post(f"{first.base_url}/calls", json=CALL)
                    assert unanswered.status_code == 503, unanswered.text
                    assert unanswered.json()["error"]["code"] == "sip_edge_unavailable"
                    session_id = a.taken[0].session_id
                    held.released.set()  # A answers from now on: the retry that reaches it is answered
                    retried = await client.post(f"{second.base_url}/calls", json=CALL)
            finally:
                held.released.set()
            logs = f"{first.log()[-3000:]}\n---\n{second.log()[-3000:]}"
    assert b.taken == [], f"the retry rang the callee again through B\n{logs}"
    # The call's ended session named, not a new call, and not a 2xx: the first try failed.
    assert retried.status_code == 409, f"{retried.text}\n{logs}"
    assert retried.json()["error"]["code"] == "call_not_placed", retried.text
    assert retried.json()["error"]["session_id"] == session_id, retried.text
    assert [o.session_id for o in a.taken] == [session_id]  # A was handed it once
    assert held.asked and all(held.asked), held.asked  # only the first request asked A (held): the retry, none


def _replica(stack: ExitStack, tmp_path: Path, store: RedisServer, name: str, edges: str) -> DispatcherProcess:
    log_dir = tmp_path / name
    log_dir.mkdir()
    env = replica_env(store, str(tmp_path), name, DISPATCHER_API_KEYS=f"team-a:{KEY}", SIP_EDGE_URL=edges,
                      SIP_EDGE_SECRET=EDGE_SECRET, BOT_CHANNEL_TOKEN="c" * 40, LOG_LEVEL="info",
                      RESERVE_MIN_IDLE="0", RESERVE_MAX_IDLE="0")  # no bot answers: the edges place nothing
    return stack.enter_context(run_dispatcher(log_dir, env))
