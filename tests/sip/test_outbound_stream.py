"""Where a call placed through a trunk streams: at the edge's own `dispatcher_url`, never at a host a
client's request names. A keyed dispatcher (`POST /calls` with `Host: attacker.example`) hands the
call to the edge's real control API, on a port of its own; the SIP side is not started (the far end's
answers: tests/sip/test_outbound.py), so the order the call would be placed with is what is checked.
An edge older than `stream_path` is a server that takes `POST /calls` as it did: `stream_url` only."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from dispatcher.app import create_app
from dispatcher.machines.local.provider import LocalMachines, LocalSettings
from dispatcher.settings import Settings
from sipedge import control
from sipedge.config import ConfigError, load
from sipedge.edge import Edge
from sipedge.outbound_call import CallOrder
from tests.sip.edge_keys import edge_keys
from tests.support.ports import free_port

EDGE_SECRET = "edge-control-secret-for-the-tests-0123456789"
KEY = "vf_trunk_stream_key_0123456789abcdef"
ELSEWHERE = {"Authorization": f"Bearer {KEY}", "Host": "attacker.example", "X-Forwarded-Proto": "https"}
CALL = {"to": "+14155550100", "from": "+14155550199", "trunk": "far"}
DISPATCHER = "http://dispatcher.internal:8080"  # the edge's dispatcher_url
TOKEN = r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"
EDGE_FILE = """
dispatcher_url = "{dispatcher}"
control_port = 5080
control_secret_env = "EDGE_SECRET"

[[trunk]]
name = "far"
termination_uri = "sip:127.0.0.1:9"
callers = ["team-a"]
caller_ids = ["+14155550199"]
"""
ORDER = {"session_id": "s1", "to": "+14155550100", "from": "+14155550199", "trunk": "far", "caller": "team-a"}


def signed(edge_url: str) -> dict[str, str]:
    """What the dispatcher presents to the edge at `edge_url`: the control key derived for it."""
    return {"Authorization": f"Bearer {edge_keys(EDGE_SECRET, edge_url)['EDGE_CONTROL_KEY']}"}


@asynccontextmanager
async def edge_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, list[CallOrder]]]:
    """The edge's control API (its URL), and the calls it took, as their flow would get them."""
    taken: list[CallOrder] = []

    async def rings(order: CallOrder, *args: object) -> None:  # the SIP call itself: not placed here
        taken.append(order)

    monkeypatch.setattr(control, "run_outbound", rings)
    path = tmp_path / "edge.toml"
    path.write_text(EDGE_FILE.format(dispatcher=DISPATCHER))
    port = free_port()
    key = edge_keys(EDGE_SECRET, f"http://127.0.0.1:{port}")["EDGE_CONTROL_KEY"]  # the one the dispatcher presents
    edge = Edge(load({"SIP_EDGE_CONFIG": str(path), "EDGE_SECRET": key}), asyncio.get_running_loop())
    edge.stack.started.set()  # PJSIP itself is not started: no call goes out
    api = control.Control(edge, key)
    try:
        async with TestServer(api.app(), host="127.0.0.1", port=port) as server:
            yield str(server.make_url("")).rstrip("/"), taken
    finally:
        await api.close()
        await edge.link.close()


@asynccontextmanager
async def older_edge() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """An edge from before `stream_path`: its trunks say nothing of it, and a hand-over is its six fields."""
    taken: list[dict[str, Any]] = []

    async def trunks(request: web.Request) -> web.Response:
        return web.json_response({"trunks": [{"name": "far", "cps": 50, "ring_seconds": 30, "callers": ["team-a"]}]})

    async def calls(request: web.Request) -> web.Response:
        order = await request.json()
        if set(order) != {"session_id", "stream_url", "to", "from", "trunk", "caller"}:
            return web.json_response({"error": {"code": "invalid_request", "message": str(sorted(order))}}, status=422)
        taken.append(order)
        return web.json_response({"session_id": order["session_id"]}, status=202)

    app = web.Application()
    app.router.add_get("/trunks", trunks)
    app.router.add_post("/calls", calls)
    async with TestServer(app, host="127.0.0.1") as server:
        yield str(server.make_url("")).rstrip("/"), taken


async def hostile_call(edge_url: str, **env: str) -> httpx.Response:
    """`POST /calls` with a key whose holder names a host of theirs, at a dispatcher handing calls to `edge_url`."""
    env = {"SIP_EDGE_URL": edge_url, "SIP_EDGE_SECRET": EDGE_SECRET, "DISPATCHER_API_KEYS": f"team-a:{KEY}", **env}
    app = create_app(Settings.from_env(env), env=env, machines=LocalMachines(LocalSettings()), rooms=None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1") as client:
        answer = await client.post("/calls", json=CALL, headers=ELSEWHERE)
    await app.state.voicefleet.aclose()
    return answer


async def test_the_edge_streams_a_call_at_its_own_dispatcher_url_whatever_host_the_client_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with edge_api(tmp_path, monkeypatch) as (edge_url, taken):
        answer = await hostile_call(edge_url)
        assert answer.status_code == 201, answer.text
    (order,) = taken
    assert re.fullmatch(rf"ws://dispatcher\.internal:8080/ws/exotel/{TOKEN}", order.stream_url), order.stream_url


async def test_an_older_edge_is_handed_phone_public_url_s_stream_never_the_request_s_host() -> None:
    async with older_edge() as (edge_url, taken):
        answer = await hostile_call(edge_url, PHONE_PUBLIC_URL="https://calls.example.com")
        assert answer.status_code == 201, answer.text
    (order,) = taken
    assert re.fullmatch(rf"wss://calls\.example\.com/ws/exotel/{TOKEN}", order["stream_url"]), order


async def test_an_older_edge_without_phone_public_url_is_refused_naming_the_ways_out() -> None:
    async with older_edge() as (edge_url, taken):
        answer = await hostile_call(edge_url)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "sip_edge_outdated", answer.text
    assert "Upgrade the edge" in answer.json()["error"]["message"]
    assert "PHONE_PUBLIC_URL" in answer.json()["error"]["message"]
    assert int(answer.headers["Retry-After"]) >= 1
    assert taken == []


@pytest.mark.parametrize(("given", "opened"), [
    ({"stream_path": "/ws/exotel/tok.en"}, "ws://dispatcher.internal:8080/ws/exotel/tok.en"),
    # An older dispatcher's whole URL at the edge's dispatcher's own origin (a host name's case aside).
    ({"stream_url": "ws://Dispatcher.Internal:8080/ws/exotel/tok.en"}, "ws://dispatcher.internal:8080/ws/exotel/tok.en"),
])
async def test_the_edge_takes_a_stream_path_or_a_whole_url_at_its_own_dispatcher(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: dict[str, str], opened: str) -> None:
    async with edge_api(tmp_path, monkeypatch) as (edge_url, taken), httpx.AsyncClient(base_url=edge_url) as edge:
        answer = await edge.post("/calls", json={**ORDER, **given}, headers=signed(edge_url))
        assert answer.status_code == 202, answer.text
        listed = await edge.get("/trunks", headers=signed(edge_url))
    assert [order.stream_url for order in taken] == [opened]
    assert listed.json()["stream_path"] is True  # the dispatcher hands this edge paths


@pytest.mark.parametrize("url", [
    "wss://attacker.example/ws/exotel/secret-token", "ws://dispatcher.internal:8081/ws/exotel/secret-token",
    "wss://dispatcher.internal:8080/ws/exotel/secret-token", "ws://me:hunter2@dispatcher.internal:8080/ws/exotel/secret-token"])
async def test_the_edge_refuses_a_whole_url_at_another_origin_naming_the_origins_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    async with edge_api(tmp_path, monkeypatch) as (edge_url, taken), httpx.AsyncClient(base_url=edge_url) as edge:
        answer = await edge.post("/calls", json={**ORDER, "stream_url": url}, headers=signed(edge_url))
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "stream_not_at_dispatcher", answer.text
    message = answer.json()["error"]["message"]
    assert "http://dispatcher.internal:8080" in message and "stream_path" in message
    assert "secret-token" not in message and "hunter2" not in message  # the URL's token is a secret until spent
    assert taken == []


@pytest.mark.parametrize("given", [
    {}, {"stream_path": "/ws/exotel/t", "stream_url": "ws://dispatcher.internal:8080/ws/exotel/t"},
    {"stream_path": "//attacker.example/ws/exotel/t"}, {"stream_path": "/sessions/s1"},
    {"stream_url": "ws://dispatcher.internal:8080/sessions/s1"},
    {"stream_url": "ws://dispatcher.internal:8080/ws/exotel/t?to=attacker.example"}])
async def test_a_hand_over_without_one_call_stream_is_422(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: dict[str, str]) -> None:
    async with edge_api(tmp_path, monkeypatch) as (edge_url, taken), httpx.AsyncClient(base_url=edge_url) as edge:
        answer = await edge.post("/calls", json={**ORDER, **given}, headers=signed(edge_url))
    assert answer.status_code == 422, answer.text
    assert "stream" in answer.json()["error"]["message"]
    assert taken == []


@pytest.mark.parametrize("url", ["ws://dispatcher.internal:8080", "https://me:hunter2@voice.example.com",
                                 "https://voice.example.com?x=1", "voice.example.com"])
def test_a_dispatcher_url_that_is_no_http_origin_is_refused_at_start(tmp_path: Path, url: str) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(EDGE_FILE.format(dispatcher=url))
    with pytest.raises(ConfigError, match=r"dispatcher_url: .*http\(s\)://host\[:port\]"):
        load({"SIP_EDGE_CONFIG": str(path), "EDGE_SECRET": EDGE_SECRET})
