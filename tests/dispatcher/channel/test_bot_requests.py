"""What a bot may ask the dispatcher over its channel (the recording's part URLs): for the session its
channel is bound to, never one it names."""

from __future__ import annotations

from pathlib import Path

import pytest

from botchannel.contract import CHANNEL_PATH, Hello, Reply, Request, encode, parse_frame
from botchannel.recording import METHOD_RECORDING_PART
from dispatcher.app import create_app
from dispatcher.settings import Settings
from tests.dispatcher.channel.test_channel import TOKEN, bot
from tests.support.dispatcher_server import serving
from tests.support.hand_dialled import hand_dialled

RECORDED, OTHER = "aaaaaaaaaaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbbbbbbbbbb"


@pytest.fixture
async def served(tmp_path: Path):
    env = {"RECORDING": "on", "RECORDING_DESTINATION": str(tmp_path)}
    app = create_app(Settings(bot_channel_token=TOKEN), env=env, machines=hand_dialled(), rooms=None)
    async with serving(app) as port:
        yield app, f"ws://127.0.0.1:{port}{CHANNEL_PATH}"
    await app.state.voicefleet.aclose()


async def ask(ws, method: str, params: dict) -> Reply:
    await ws.send(encode(Request(1, method, params)))
    reply = parse_frame(await ws.recv())
    assert isinstance(reply, Reply)
    return reply


async def test_a_bot_gets_part_urls_for_its_own_session_only(served):
    app, url = served
    recordings = app.state.voicefleet.artifacts.recordings
    assert await recordings.plan_for(RECORDED, transport="webrtc", release="default", key_name=None) is not None
    own = await bot(url, Hello(machine_id="m-1", session_id=RECORDED))
    answer = await ask(own, METHOD_RECORDING_PART, {"part": 1})
    assert answer.ok and answer.result["url"].startswith("/bots/recordings/parts/")

    other = await bot(url, Hello(machine_id="m-2", session_id=OTHER))
    refused = await ask(other, METHOD_RECORDING_PART, {"part": 1, "session_id": RECORDED})  # naming it changes nothing
    assert refused.error is not None and (refused.error.status, refused.error.code) == (404, "not_recorded")
    await own.close()
    await other.close()


async def test_an_idle_bot_and_an_unknown_method_are_refused(served):
    _, url = served
    idle = await bot(url, Hello(machine_id="m-3", capabilities=("webrtc",)))
    refused = await ask(idle, METHOD_RECORDING_PART, {"part": 1})
    assert refused.error is not None and (refused.error.status, refused.error.code) == (409, "not_assigned")
    unknown = await ask(idle, "files.list", {})
    assert unknown.error is not None and (unknown.error.status, unknown.error.code) == (404, "unknown_method")
    await idle.close()
