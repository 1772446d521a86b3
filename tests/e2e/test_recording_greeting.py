"""A bot that greets first, over WebRTC, end to end with real processes: its greeting is the
transcript's first bot line, where the recording has it, even when the greeting is the call's first
audio (a browser's mic that opens late: its permission prompt, a user's click)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.e2e.conftest import SPEECH
from tests.e2e.recording_checks import artifacts_when_kept, loud_seconds, read_stereo
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.webrtc_client import PacedMic, WebRTCClient

pytestmark = pytest.mark.slow  # a real bot, real WebRTC, real speech

TOLERANCE = 0.15  # seconds between a transcript line's start and its audio in the recording


class LateMic(PacedMic):
    """A mic that sends nothing until the caller first speaks: the bot hears no audio at all before
    it (a browser's mic waiting for its permission prompt sends none either)."""

    def __init__(self) -> None:
        super().__init__()
        self._opened = asyncio.Event()

    def play(self, samples: np.ndarray) -> None:
        super().play(samples)
        self._opened.set()

    async def recv(self) -> Any:
        await self._opened.wait()
        return await super().recv()


@pytest.fixture(scope="module")
def recording_dispatcher(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    folder = tmp_path_factory.mktemp("recordings")
    env = {"RESERVE_MAX_IDLE": "0", "RECORDING": "on", "RECORDING_DESTINATION": str(folder)}
    with run_dispatcher(tmp_path_factory.mktemp("dispatcher"), env) as running:
        yield running


async def greeted_call(dispatcher: DispatcherProcess, mic: PacedMic) -> tuple[bytes, list[dict[str, Any]]]:
    """A call to the parrot on `mic`: its greeting heard, then one utterance answered; the call's
    recording and transcript."""
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        started = await api.post("/start", json={"body": {}})
        assert started.status_code == 201, started.text
        session_id = started.json()["session_id"]
        client = WebRTCClient(dispatcher.base_url + started.json()["offer_url"])
        client.mic = mic
        async with client:
            await greeting_heard(client)
            result = await client.talk(SPEECH, listen_seconds=30.0, until_reply=True)
            assert result.replied, result.summary()
            await asyncio.sleep(1.0)
            assert (await api.delete(f"/sessions/{session_id}")).status_code == 204
        listing = await artifacts_when_kept(api, session_id, {"recording.wav", "transcript.jsonl"})
        urls = {a["name"]: a["url"] for a in listing["artifacts"]}
        async with httpx.AsyncClient(timeout=30) as download:
            wav = (await download.get(urls["recording.wav"])).content
            turns = [json.loads(line) for line in (await download.get(urls["transcript.jsonl"])).text.splitlines()]
    return wav, turns


async def greeting_heard(client: WebRTCClient, timeout: float = 20.0) -> None:
    """Until the client has heard the bot's greeting end (a loaded machine takes its time)."""
    async with asyncio.timeout(timeout):
        while client.result().connect_to_first_audio is None:
            await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)


@pytest.mark.parametrize("mic", [LateMic, PacedMic], ids=["mic-opens-late", "mic-open"])
async def test_the_greeting_is_the_transcripts_first_bot_line_where_the_recording_has_it(recording_dispatcher, mic):
    wav, turns = await greeted_call(recording_dispatcher, mic())
    stereo = read_stereo(wav)
    caller, bot = loud_seconds(stereo.left, 16000), loud_seconds(stereo.right, 16000)
    assert caller and bot and bot[0][1] <= caller[0][0], (caller, bot)  # the greeting, before the caller spoke
    bot_lines = [turn for turn in turns if turn["who"] == "bot"]
    assert len(bot_lines) >= 2, turns  # the greeting, and the reply
    greeting = bot_lines[0]
    assert abs(greeting["start"] - bot[0][0]) <= TOLERANCE, (greeting, bot)
    assert greeting["end"] <= caller[0][0], (greeting, caller)
    assert "latency" not in greeting and "latency" in bot_lines[1], turns  # nothing was said before it
