"""The control API of an edge with several workers (sipedge/control_front.py) in front of stand-in
workers: aiohttp servers on loopback that answer as a worker's control API does and note what they
were asked. Which worker a request reaches, and what the edge answers, is then seen without PJSIP
(the whole path, with real workers, is tests/sip/test_transfer_workers.py and test_outbound_workers.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sipedge.control_front import ControlFront
from tests.support.ports import free_port

SECRET = "edge-control-secret-for-the-tests-0123456789"
CALL = {"session_id": "s1", "stream_path": "/ws/exotel/t", "to": "+14155550100", "from": "+14155550199",
        "trunk": "far", "caller": "local"}


@dataclass
class StandIn:
    """A worker's control API: `answers` by path (status, code), 404 no_call for any other transfer."""

    answers: dict[str, tuple[int, str]] = field(default_factory=dict)
    asked: list[tuple[str, str | None]] = field(default_factory=list)  # (path, its Authorization)

    def app(self) -> web.Application:
        async def answer(request: web.Request) -> web.Response:
            self.asked.append((request.path, request.headers.get("Authorization")))
            status, code = self.answers.get(request.path, (404, "no_call"))
            headers = {"Retry-After": "5"} if status == 503 else None
            return web.json_response({"error": {"code": code}} if status >= 400 else {"code": code}, status=status,
                                     headers=headers)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        return app


@pytest.fixture
async def edge() -> AsyncIterator[tuple[str, list[StandIn], list[int | None]]]:
    """The edge's control API in front of two stand-in workers: its URL, the workers, and their ports
    (set one to None for a worker not up)."""
    async with fronted() as running:
        yield running


@asynccontextmanager
async def fronted(draining: Callable[[], bool] = lambda: False) -> AsyncIterator[
        tuple[str, list[StandIn], list[int | None]]]:
    """`edge`'s, the edge draining while `draining()` says so."""
    workers = [StandIn(), StandIn()]
    servers = [TestServer(worker.app(), host="127.0.0.1") for worker in workers]
    for server in servers:
        await server.start_server()
    ports: list[int | None] = [server.port for server in servers]
    port = free_port()
    front = ControlFront("127.0.0.1", port, SECRET, lambda: ports, draining=draining)
    await front.start()
    try:
        yield f"http://127.0.0.1:{port}", workers, ports
    finally:
        await front.close()
        for server in servers:
            await server.close()


def client(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=10, headers={"Authorization": f"Bearer {SECRET}"})


async def test_a_transfer_gets_the_answer_of_the_worker_holding_the_call_else_404(
        edge: tuple[str, list[StandIn], list[int | None]]) -> None:
    url, workers, _ = edge
    workers[1].answers["/calls/s1/transfer"] = (200, "referred")
    async with client(url) as control:
        held = await control.post("/calls/s1/transfer", json={"to": "+14155550123", "request_id": "r"})
        nobody = await control.post("/calls/s2/transfer", json={"to": "+14155550123", "request_id": "r"})
    assert (held.status_code, held.json()) == (200, {"code": "referred"})
    assert nobody.status_code == 404 and nobody.json()["error"]["code"] == "no_call"
    # Both workers were asked, with the secret: a worker's own API takes nothing without it. (Once the
    # holder answered, the front no longer waits for the others: the first's request may have been cut.)
    assert [w.asked[-1] for w in workers] == [("/calls/s2/transfer", f"Bearer {SECRET}")] * 2
    assert {authorization for w in workers for _, authorization in w.asked} == {f"Bearer {SECRET}"}


async def test_calls_go_to_each_worker_in_turn_past_a_full_one_and_a_retry_to_the_same(
        edge: tuple[str, list[StandIn], list[int | None]]) -> None:
    url, workers, ports = edge
    for worker in workers:
        worker.answers["/calls"] = (202, "taken")
    async with client(url) as control:
        assert (await control.post("/calls", json=CALL)).status_code == 202
        assert (await control.post("/calls", json={**CALL, "session_id": "s2"})).status_code == 202
        assert [len(w.asked) for w in workers] == [1, 1]  # the second call: the next worker
        assert (await control.post("/calls", json=CALL)).status_code == 202  # the dispatcher's retry of s1
        assert [len(w.asked) for w in workers] == [2, 1]  # to the worker that took it, and no other
        workers[1].answers["/calls"] = (503, "edge_full")
        assert (await control.post("/calls", json={**CALL, "session_id": "s3"})).status_code == 202
        assert [len(w.asked) for w in workers] == [3, 2]  # the second was full: the first took it
        workers[0].answers["/calls"] = (503, "edge_full")
        full = await control.post("/calls", json={**CALL, "session_id": "s4"})
        assert (full.status_code, full.headers.get("Retry-After")) == (503, "5")
        ports[0] = ports[1] = None  # both starting again
        down = await control.post("/calls", json={**CALL, "session_id": "s5"})
        assert down.status_code == 503 and down.json()["error"]["code"] == "not_ready"


async def test_the_edge_s_control_api_takes_only_the_secret(edge: tuple[str, list[StandIn], list[int | None]]) -> None:
    url, workers, _ = edge
    async with httpx.AsyncClient(base_url=url, timeout=10) as stranger:
        assert (await stranger.post("/calls", json=CALL)).status_code == 401
        wrong = await stranger.get("/trunks", headers={"Authorization": "Bearer wrong"})
        assert wrong.status_code == 401
    assert [w.asked for w in workers] == [[], []]


async def test_a_call_passes_a_worker_that_cannot_be_connected_to(
        edge: tuple[str, list[StandIn], list[int | None]]) -> None:
    """No connection, nothing placed: the next worker takes the call (a worker sent it and silent keeps
    it: tests/sip/test_control_front_stall.py)."""
    url, workers, ports = edge
    workers[1].answers["/calls"] = (202, "taken")
    ports[0] = free_port()  # nothing listens there: the worker died before the supervisor noticed
    async with client(url) as control:
        assert (await control.post("/calls", json=CALL)).status_code == 202
    assert [len(w.asked) for w in workers] == [0, 1]
