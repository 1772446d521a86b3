"""The Moshi example's Pipecat service (examples/moshi/moshi_service.py) against the model server
stand-in (tests/fakes/moshi_server.py, its own process) and against servers that misbehave: the
caller's audio goes out as Ogg/Opus, the model's audio and words come back as Pipecat's frames, and
every failure is one ErrorFrame in the service's words that leaves the service unusable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import websockets
from pipecat.frames.frames import LLMTextFrame
from pipecat.utils.errors import ErrorCategory

from tests.fakes.moshi_server import REPLY_TEXT, ModelServerProcess, model_server_process, tone_pages
from tests.support.moshi_pipeline import Collected, moshi_service, stream_through
from tests.support.ports import free_port

pytestmark = pytest.mark.timeout(120)
MoshiService = moshi_service.MoshiService
REPLY_SECONDS = 0.5  # the stand-in's reply: a tone this long


def failed(collected: Collected) -> bool:
    return bool(collected.errors)


def only_error(collected: Collected) -> str:
    """The one error the service pushed, which left it unusable."""
    assert len(collected.errors) == 1, collected.errors
    error = collected.errors[0]
    assert error.processor is not None and error.processor.is_usable is False, error
    return error.error


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServerProcess]:
    with model_server_process(streams=1, delay=0.1) as model:
        yield model


async def test_the_callers_audio_goes_out_as_ogg_opus_and_the_models_audio_and_words_come_back(
        model: ModelServerProcess) -> None:
    words = "".join(REPLY_TEXT[:len(tone_pages(REPLY_SECONDS))])  # the stand-in sends a piece per Ogg page
    collected = await stream_through(MoshiService(url=model.url), lambda c: c.spoken == words)
    assert collected.errors == []  # the stand-in refuses audio that is not Ogg/Opus: it took ours
    assert collected.spoken == words and words.startswith("Hello, ")
    assert "".join(f.text for f in collected.down if isinstance(f, LLMTextFrame)) == words
    audio = collected.audio.astype(float)
    assert len(audio) >= 24000 * REPLY_SECONDS * 0.9 and (audio**2).mean() ** 0.5 > 1000  # the stand-in's tone, decoded


async def test_a_service_that_cannot_be_reached_is_the_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    collected = await stream_through(MoshiService(url=url), failed)
    error = only_error(collected)
    assert error.startswith(f"cannot reach the model service at {url.replace('http', 'ws')}/api/chat: "), error
    assert "Connect call failed" in error or "refused" in error, error
    assert collected.errors[0].category is ErrorCategory.CONNECTIVITY


async def test_a_stream_past_the_services_slots_is_refused_in_its_words(model: ModelServerProcess) -> None:
    async with websockets.connect(model.url.replace("http", "ws") + "/api/chat") as holder:
        assert await holder.recv() == b"\x00"  # the one slot is taken
        collected = await stream_through(MoshiService(url=model.url), failed)
    error = only_error(collected)
    assert error.endswith("refused the stream: no free stream: all 1 are in use"), error


async def test_a_stream_cut_mid_call_is_the_error_and_the_service_sends_no_more() -> None:
    with model_server_process(streams=1, delay=0.1) as dying:
        def kill_once_heard(collected: Collected) -> None:
            if collected.spoken and dying.process.poll() is None:
                dying.die()

        collected = await stream_through(MoshiService(url=dying.url), failed, meanwhile=kill_once_heard)
    error = only_error(collected)
    assert error.startswith("the model service cut the stream mid-call (no close frame"), error


@asynccontextmanager
async def scripted_server(*messages: bytes | str) -> AsyncIterator[str]:
    """A server on /api/chat that sends `messages` and then holds the stream, reading what comes."""
    async def serve(websocket: websockets.ServerConnection) -> None:
        for message in messages:
            await websocket.send(message)
        async for _ in websocket:
            pass

    async with websockets.serve(serve, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"


async def test_a_server_that_takes_the_stream_and_never_starts_it_is_the_error_not_a_silent_call() -> None:
    async with scripted_server() as url:  # as `moshi.server` holds a second caller behind its lock
        collected = await stream_through(MoshiService(url=url, handshake_seconds=0.5), failed)
    assert "took the stream but sent no handshake in 0.5 s" in only_error(collected)


@pytest.mark.parametrize(("messages", "words"), [
    ((b"\x07junk",), "did not start with Moshi's handshake: its first message was b'\\x07junk'"),
    ((b"\x00", b"\x01not ogg"), "sent audio that is not Ogg/Opus: no Ogg page at byte 0 of 7"),
    ((b"\x00", b"\x05the model ran out of memory"), "ended the stream: the model ran out of memory"),
])  # fmt: skip
async def test_a_server_that_breaks_the_protocol_is_the_error_in_its_words(messages: tuple[bytes, ...],
                                                                          words: str) -> None:
    async with scripted_server(*messages) as url:
        collected = await stream_through(MoshiService(url=url), failed)
    assert words in only_error(collected)


async def test_what_moshis_clients_ignore_is_ignored() -> None:
    async with scripted_server(b"\x00", "a text frame", b"", b"\x09a newer kind", b"\x02Hi") as url:
        collected = await stream_through(MoshiService(url=url), lambda c: c.spoken == "Hi", seconds=10)
    assert collected.errors == [] and collected.spoken == "Hi"


@pytest.mark.parametrize(("base", "chat"), [
    ("http://127.0.0.1:8998", "ws://127.0.0.1:8998/api/chat"),
    ("https://moshi.internal/region-a/", "wss://moshi.internal/region-a/api/chat"),
])  # fmt: skip
def test_the_chat_url_is_the_base_urls_own_scheme_made_websocket(base: str, chat: str) -> None:
    assert moshi_service.chat_url(base) == chat


@pytest.mark.parametrize("base", ["moshi.internal:8998", "ws://moshi.internal:8998", "http://", ""])
def test_a_base_url_that_is_no_http_url_is_refused_naming_the_variable(base: str) -> None:
    with pytest.raises(ValueError, match="MODEL_SERVICE_URL must be the model service's http:// or https:// base URL"):
        moshi_service.chat_url(base)


