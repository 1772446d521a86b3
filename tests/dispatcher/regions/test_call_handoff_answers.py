"""What a region believes of a peer's signed answer to `POST /regions/calls`: only a stream at that
peer's own `REGIONS` host and port, for the call's carrier; anything else answers the call here."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import MappingProxyType

import pytest
from aiohttp import web

from dispatcher.regions.calls import CALLS_PATH, REST_SECONDS, CallHandoffs, streams_to
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Peer, Peers
from dispatcher.regions.signing import ANSWER_SIGNATURE, SIGNATURE, answer_signature
from tests.support.hook_receiver import hook_receiver

SECRET = b"s" * 32


def signed(request: web.Request, data: dict[str, str], secret: bytes = SECRET) -> web.Response:
    body = json.dumps(data).encode()
    return web.Response(body=body, content_type="application/json",
                        headers={ANSWER_SIGNATURE: answer_signature(secret, request.headers.get(SIGNATURE, ""), body)})


@asynccontextmanager
async def peer_answering(
        answer: Callable[[web.Request, str], web.Response]) -> AsyncIterator[tuple[CallHandoffs, Peer]]:
    """A peer "us" on loopback answering each hand-off with `answer(request, its own URL)`."""
    url = ""

    async def handler(request: web.Request) -> web.Response:
        return answer(request, url)

    async with hook_receiver(handler, path=CALLS_PATH) as calls_url:
        url = calls_url.removesuffix(CALLS_PATH)
        calls = CallHandoffs(Peers(Regions("eu", MappingProxyType({"eu": "http://127.0.0.1:1", "us": url}), SECRET)))
        try:
            yield calls, Peer("us", url)
        finally:
            await calls.aclose()


async def test_a_signed_answer_at_the_peers_own_url_is_taken() -> None:
    def answer(request: web.Request, url: str) -> web.Response:
        stream = url.replace("http://", "ws://") + "/ws/twilio/a-token"
        return signed(request, {"region": "us", "stream": stream, "session_id": "x"})

    async with peer_answering(answer) as (calls, peer):
        handed = await calls.ask(peer, "twilio", "at_capacity")
    assert handed is not None and handed.stream_url.endswith("/ws/twilio/a-token")


@pytest.mark.parametrize("stream", [
    "ws://attacker.example:9/ws/twilio/token",  # another host
    "ws://127.0.0.1:9/ws/twilio/token",  # the peer's host, another port
    "{own}/ws/plivo/token",  # another carrier's path
    "{own}/ws/twilio/",  # no token
    "{own}/ws/twilio/token/more",
    "{own}/elsewhere",
    "{own}/ws/twilio/token?x=1",
    "{own_wss}/ws/twilio/token",  # wss where the peer's URL is http (another listener)
])
async def test_a_signed_answer_sending_the_carrier_elsewhere_answers_the_call_here(stream: str) -> None:
    def answer(request: web.Request, url: str) -> web.Response:
        own = url.replace("http://", "ws://")
        text = stream.format(own=own, own_wss=own.replace("ws://", "wss://"))
        return signed(request, {"region": "us", "stream": text, "session_id": "x"})

    async with peer_answering(answer) as (calls, peer):
        assert await calls.ask(peer, "twilio", "at_capacity") is None


def test_a_peer_at_https_is_streamed_to_at_wss_only() -> None:
    assert streams_to("https://us.example.com", "twilio", "wss://us.example.com/ws/twilio/t")
    assert streams_to("https://us.example.com:8443", "telnyx", "wss://us.example.com:8443/ws/telnyx/t")
    assert not streams_to("https://us.example.com", "twilio", "ws://us.example.com/ws/twilio/t")
    assert not streams_to("https://us.example.com", "twilio", "wss://us.example.com:444/ws/twilio/t")
    assert not streams_to("https://us.example.com", "twilio", "wss://front.example.com/ws/twilio/t")
    assert not streams_to("https://us.example.com", "twilio", "wss://user@us.example.com/ws/twilio/t")
    assert not streams_to("https://us.example.com", "twilio", "wss://us.example.com:x/ws/twilio/t")


@pytest.mark.parametrize("refusal", ["at_capacity", "unsigned"])
async def test_a_peer_that_refuses_or_answers_unsigned_is_not_asked_again_for_a_few_seconds(refusal: str) -> None:
    asked: list[str] = []

    def answer(request: web.Request, url: str) -> web.Response:
        asked.append(refusal)
        if refusal == "at_capacity":
            return web.json_response({"error": {"code": "at_capacity"}}, status=429)
        return web.json_response({"region": "us", "stream": url.replace("http", "ws") + "/ws/twilio/t",
                                  "session_id": "x"})  # the right answer, but not signed

    now = [1000.0]
    async with peer_answering(answer) as (calls, peer):
        calls._clock = lambda: now[0]  # the rest is measured on this clock
        assert not calls.resting("us")
        assert await calls.ask(peer, "twilio", "at_capacity") is None  # the call is answered here
        assert calls.resting("us") and asked == [refusal]
        now[0] += REST_SECONDS + 0.1
        assert not calls.resting("us")  # asked again once the rest is over
