"""The model server stand-in (tests/fakes/moshi_server.py) speaks Moshi's protocol as strictly as
`moshi.server`, and refuses a stream past its slots out loud: the tests that lean on it rely on both."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from tests.fakes.moshi_server import (
    AUDIO,
    ERROR,
    HANDSHAKE,
    TEXT,
    TRY_AGAIN_LATER,
    UNSUPPORTED_DATA,
    model_server_process,
    tone_pages,
)

DELAY = 0.5


@pytest.fixture(scope="module")
def model_url() -> Iterator[str]:
    with model_server_process(streams=2, delay=DELAY) as model:
        yield model.url


def chat(url: str) -> str:
    return url.replace("http", "ws") + "/api/chat"


async def closed_with(stream: websockets.ClientConnection) -> int | None:
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await stream.recv()
    return closed.value.rcvd.code if closed.value.rcvd else None


def test_a_stream_past_the_slots_is_refused_out_loud_and_the_capacity_counts_streams(model_url: str) -> None:
    async def three_streams() -> None:
        async with websockets.connect(chat(model_url)) as one, websockets.connect(chat(model_url)) as two:
            assert (await one.recv(), await two.recv()) == (bytes([HANDSHAKE]), bytes([HANDSHAKE]))
            assert httpx.get(f"{model_url}/api/capacity").json() == {"free": 0, "total": 2}
            async with websockets.connect(chat(model_url)) as three:
                refusal = await three.recv()
                assert refusal[0] == ERROR and b"no free stream" in refusal
                assert await closed_with(three) == TRY_AGAIN_LATER
        assert httpx.get(f"{model_url}/api/capacity").json() == {"free": 2, "total": 2}

    asyncio.run(three_streams())


def test_audio_is_answered_after_the_delay_with_ogg_opus_and_text_and_what_is_not_audio_is_ignored(
        model_url: str) -> None:
    async def one_call() -> None:
        async with websockets.connect(chat(model_url)) as stream:
            assert await stream.recv() == bytes([HANDSHAKE])
            await stream.send("a text frame")  # ignored, as moshi.server ignores it
            await stream.send(bytes([9]) + b"unknown kind")  # ignored too
            sent = time.monotonic()
            await stream.send(bytes([AUDIO]) + tone_pages(0.2)[0])
            first = await stream.recv()
            assert time.monotonic() - sent >= DELAY
            kinds = [first[0]] + [(await stream.recv())[0] for _ in range(3)]
            assert kinds == [AUDIO, TEXT, AUDIO, TEXT]
            assert first[1:5] == b"OggS"

    asyncio.run(one_call())


def test_audio_that_is_not_ogg_is_refused(model_url: str) -> None:
    async def bad_audio() -> None:
        async with websockets.connect(chat(model_url)) as stream:
            assert await stream.recv() == bytes([HANDSHAKE])
            await stream.send(bytes([AUDIO]) + b"raw pcm")
            refusal = await stream.recv()
            assert refusal[0] == ERROR and b"Ogg" in refusal
            assert await closed_with(stream) == UNSUPPORTED_DATA

    asyncio.run(bad_audio())
