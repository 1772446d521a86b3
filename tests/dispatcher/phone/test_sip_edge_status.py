"""The dispatcher's view of its SIP edges (`GET /status`'s `sip_edges`, `/metrics`' gauges) against stand-ins of
the edge's control API that keep its contract: the edge's own routes and bearer check (sipedge/control_auth.py),
its status in the edge's shape (sipedge/edge_status.py). One answers, one holds another secret (401), one is
down (nothing listens), one never answers (past the dispatcher's 2 s)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from aiohttp import web

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.phone.edge_secret import EdgeSecret
from dispatcher.phone.sip_edge_status import ASK_SECONDS, FRESH_SECONDS, SipEdgeStatus
from dispatcher.phone.sip_edges import SipEdges
from dispatcher.settings import Settings
from dispatcher.store.memory import LocalFirstClaims
from sipedge.control_auth import control_app, error
from tests.support.ports import free_port

SECRET = "edge-control-secret-for-the-tests-0123456789"
EDGE_STATUS = {  # the edge's own shape (tests/sip/test_edge_status.py reads it off a real edge)
    "up_since": 1795624000.5, "version": "sipedge-0123456789ab", "ready": True,
    "calls": {"in_progress": 3, "free": 51, "total": 54},
    "trunks": [{"name": "twilio", "registration": "not_registering"},
               {"name": "pbx", "registration": "refused", "code": 403, "reason": "Forbidden"}],
    "refused_last_minute": 7, "draining": False,
}


class StandInEdge:
    """An edge's control API on a loopback port: `GET /status` answers `body` (with `code`), or never (`silent`),
    to the control key derived from the deployment `secret` for its URL, as an edge of a stack holds."""

    def __init__(self, secret: str, body: dict[str, Any], *, silent: bool = False, code: int = 200) -> None:
        self.secret, self.body, self.silent, self.code = secret, body, silent, code
        self.asked = 0
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _status(self, request: web.Request) -> web.Response:
        self.asked += 1
        if self.silent:
            await self._released.wait()
        return web.json_response(self.body, status=self.code)

    async def _none(self, request: web.Request) -> web.Response:
        return error(404, "not_here", "not served by this stand-in")

    async def __aenter__(self) -> StandInEdge:
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{listening.getsockname()[1]}"  # its key is derived for its URL: known first
        key = EdgeSecret(self.secret).control_credential(self.url)
        self._runner = web.AppRunner(control_app(key, self._none, self._none, self._none, self._status))
        await self._runner.setup()
        await web.SockSite(self._runner, listening).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        self._released.set()
        assert self._runner is not None
        await self._runner.cleanup()


def without_nulls(value: Any) -> Any:
    """The route's answer less its nulls (each part it does not have), as the edge sent it."""
    if isinstance(value, dict):
        return {name: without_nulls(item) for name, item in value.items() if item is not None}
    return [without_nulls(item) for item in value] if isinstance(value, list) else value


@asynccontextmanager
async def four_edges() -> AsyncIterator[tuple[StandInEdge, StandInEdge, str, StandInEdge]]:
    async with StandInEdge(SECRET, EDGE_STATUS) as good, \
            StandInEdge("another-control-secret-0123456789abcdef", EDGE_STATUS) as other, \
            StandInEdge(SECRET, EDGE_STATUS, silent=True) as slow:
        yield good, other, f"http://127.0.0.1:{free_port()}", slow


@asynccontextmanager
async def dispatcher(env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        try:
            yield client
        finally:
            await app.state.voicefleet.aclose()


async def test_each_edge_is_answering_with_its_figures_or_says_why_not() -> None:
    async with four_edges() as (good, other, down, slow), dispatcher(
            {"SIP_EDGE_URL": ",".join([good.url, other.url, down, slow.url]), "SIP_EDGE_SECRET": SECRET}) as api:
        answer = await api.get("/status")
        metrics = (await api.get("/metrics")).text
    assert answer.status_code == 200, answer.text
    edges = answer.json()["sip_edges"]
    assert [edge["url"] for edge in edges] == [good.url, other.url, down, slow.url]  # as SIP_EDGE_URL lists them
    assert without_nulls(edges[0]) == {"url": good.url, "answering": True, **EDGE_STATUS}
    assert edges[1]["answering"] is False and edges[1]["error"].startswith("401: the edge's control key"), edges[1]
    assert edges[2]["answering"] is False and edges[2]["error"].startswith("not answering: connection refused")
    assert without_nulls(edges[3]) == {"url": slow.url, "answering": False,
                                       "error": f"not answering: no answer within {ASK_SECONDS:g} s"}
    assert f'voicefleet_sip_edge_answering{{edge="{good.url}"}} 1.0' in metrics
    assert f'voicefleet_sip_edge_answering{{edge="{down}"}} 0.0' in metrics
    assert f'voicefleet_sip_edge_calls{{edge="{good.url}"}} 3.0' in metrics
    assert f'voicefleet_sip_edge_call_slots{{edge="{good.url}"}} 54.0' in metrics
    assert f'voicefleet_sip_edge_trunk_registered{{edge="{good.url}",trunk="pbx"}} 0.0' in metrics
    assert f'voicefleet_sip_edge_calls{{edge="{down}"}}' not in metrics  # no figures for an edge that did not say


async def test_without_sip_edge_url_the_status_has_no_sip_edges() -> None:
    async with dispatcher({}) as api:
        body = (await api.get("/status")).json()
    assert body["sip_edges"] is None  # as `cells` and `model_service` are where they do not apply


async def test_the_edges_are_asked_once_in_a_few_seconds_however_often_the_status_is_read() -> None:
    now = [0.0]
    async with StandInEdge(SECRET, EDGE_STATUS) as good:
        edges = SipEdges((good.url,), EdgeSecret(SECRET), timeout=5.0, max_answer_bytes=65536,
                         records=LocalFirstClaims())
        view = SipEdgeStatus(edges, clock=lambda: now[0])
        try:
            together = await asyncio.gather(*(view.read() for _ in range(5)))  # a dashboard's pages at once
            now[0] = FRESH_SECONDS - 0.1
            again = await view.read()
            assert good.asked == 1 and all(read == again for read in together)
            now[0] = FRESH_SECONDS
            good.body = {**EDGE_STATUS, "calls": {"in_progress": 4, "free": 50, "total": 54}}
            assert (await view.read())[0]["calls"]["in_progress"] == 4 and good.asked == 2
        finally:
            await edges.aclose()


async def test_an_answer_that_is_not_an_edges_status_is_said_so() -> None:
    async with StandInEdge(SECRET, {"calls": {"in_progress": -1}}) as odd:
        edges = SipEdges((odd.url,), EdgeSecret(SECRET), timeout=5.0, max_answer_bytes=65536,
                         records=LocalFirstClaims())
        try:
            (read,) = await SipEdgeStatus(edges).read()
        finally:
            await edges.aclose()
    assert read["answering"] is False and "could not be read" in read["error"], read


async def test_a_registration_pjsua_sent_no_register_for_counts_as_refused() -> None:
    """A trunk whose REGISTER PJSUA gave up on before sending (`failed`, its status and reason) takes no inbound
    call, as a refused one: it is shown with PJSUA's words and counted in the refused registrations' gauge
    (the alarm's metric line)."""
    failed = {"name": "pbx6", "registration": "failed", "status": 171060,
              "reason": "Unsupported transport (PJSIP_EUNSUPTRANSPORT)"}
    body = {**EDGE_STATUS, "trunks": [*EDGE_STATUS["trunks"], failed]}  # type: ignore[misc]
    async with StandInEdge(SECRET, body) as edge, dispatcher(
            {"SIP_EDGE_URL": edge.url, "SIP_EDGE_SECRET": SECRET}) as api:
        answer = await api.get("/status")
        metrics = (await api.get("/metrics")).text
    assert failed in without_nulls(answer.json()["sip_edges"][0]["trunks"]), answer.text
    assert f'voicefleet_sip_edge_registrations_refused{{edge="{edge.url}"}} 2.0' in metrics
    assert f'voicefleet_sip_edge_trunk_registered{{edge="{edge.url}",trunk="pbx6"}} 0.0' in metrics
