"""A WhatsApp call reaches a bot in pipecat-examples' whatsapp shape (`run_bot(webrtc_connection)`,
tests/bots/webrtc_run_bot.py, run unchanged by voicefleet's host): Meta's side is the fake
(tests/fakes/whatsapp.py: the signed webhooks, a strict Graph API) and an aiortc peer with an audio
offer alone, as WhatsApp's media servers make it. The dispatcher (`python -m dispatcher`, API keys on)
starts the session with the offer, accepts the call with the bot's answer, and the caller hears the
bot greet and echo; the caller's hang-up (Meta's `terminate`) ends the session, and a bot that ends
first hangs the call up at Meta."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.bot.conftest import SPEECH_WAV
from tests.fakes.server import serve
from tests.fakes.whatsapp import PHONE_NUMBER_ID, FakeWhatsApp, FakeWhatsAppCall
from tests.support.audio import BOT_AUDIO_RMS, echo_similarity, read_wav
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.webrtc_client import WebRTCClient

pytestmark = pytest.mark.slow  # a real dispatcher, a real bot process importing Pipecat, real WebRTC

BOT = Path(__file__).parents[1] / "bots" / "webrtc_run_bot.py"
KEY = "whatsapp-test-key-0123456789"
ADMIN = "whatsapp-test-admin-0123456789"


@pytest.fixture(scope="module")
def meta() -> Iterator[FakeWhatsApp]:
    with serve(FakeWhatsApp()) as fake:
        yield fake


@pytest.fixture(scope="module")
def dispatcher(meta: FakeWhatsApp, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DispatcherProcess]:
    env = {**meta.env(f"{PHONE_NUMBER_ID}=support"), "BOT_FILE": str(BOT), "RESERVE_MIN_IDLE": "1",
           "DISPATCHER_API_KEYS": f"support:{KEY}", "DISPATCHER_ADMIN_KEYS": ADMIN,
           "BOT_CHANNEL_TOKEN": "whatsapp-test-channel-token-0123456789"}
    with run_dispatcher(tmp_path_factory.mktemp("whatsapp"), env) as running:
        yield running


async def deliver(base_url: str, webhook: tuple[bytes, dict[str, str]]) -> httpx.Response:
    body, headers = webhook
    async with api_client(base_url=base_url, timeout=30) as http:
        return await http.post("/phone/whatsapp", content=body, headers=headers)


def caller(meta: FakeWhatsApp, base_url: str, calls: list[FakeWhatsAppCall]) -> WebRTCClient:
    """Meta's media side: its offer goes out in the signed `connect`, its answer is what the call was accepted with."""

    async def through_meta(offer: dict[str, Any]) -> dict[str, Any]:
        call = meta.ring(offer["sdp"])
        calls.append(call)
        answered = await deliver(base_url, meta.connect_webhook(call))
        assert answered.status_code == 200, answered.text
        return {"sdp": await meta.answer_of(call), "type": "answer"}

    return WebRTCClient("", signal=through_meta, data_channel=False, connect_timeout=30)


async def session_of(api: httpx.AsyncClient, call: FakeWhatsAppCall) -> dict[str, Any]:
    """The call's session as `GET /sessions` lists it (with its `whatsapp` record), once it is listed."""
    for _ in range(100):
        sessions = (await api.get("/sessions")).json()["sessions"]
        found = next((s for s in sessions if (s.get("whatsapp") or {}).get("call_id") == call.call_id), None)
        if found is not None:
            return dict(found)
        await asyncio.sleep(0.1)
    raise AssertionError("the call's session is not listed with its whatsapp record")


async def status_once_over(api: httpx.AsyncClient, session_id: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = str((await api.get(f"/sessions/{session_id}")).json()["status"])
        if status in ("ended", "failed") or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def events_once_stopped(api: httpx.AsyncClient, session_id: str, timeout: float = 20) -> list[dict[str, Any]]:
    """The session's timeline once its stop is on it (written when the bot's process has exited, which
    may be after the bot's own `ended`), or as it is at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        events = list((await api.get(f"/sessions/{session_id}/timeline")).json()["events"])
        if any(e["event"] == "stop_requested" for e in events) or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.1)


async def test_a_whatsapp_caller_hears_the_run_bot_and_its_hang_up_ends_the_session(
        meta: FakeWhatsApp, dispatcher: DispatcherProcess) -> None:
    calls: list[FakeWhatsAppCall] = []
    async with api_client(base_url=dispatcher.base_url, timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as api:
        async with caller(meta, dispatcher.base_url, calls) as client:
            call = calls[0]
            assert call.actions == ["pre_accept", "accept"]
            assert "a=fingerprint:sha-384" not in (call.answer or "")
            result = await client.talk(SPEECH_WAV, listen_seconds=3)
            assert result.segments and max(s.peak_rms for s in result.segments) > BOT_AUDIO_RMS, result.summary()
            # The bot heard the caller: its echo of the caller's words came back (its greeting is a tone).
            heard = np.concatenate(client.recording.chunks)
            assert echo_similarity(read_wav(SPEECH_WAV), heard, client.recording.sample_rate) > 0.5

            session = await session_of(api, call)
            assert session["whatsapp"] == {"call_id": call.call_id, "from": call.caller}
            assert session["transport"] == "webrtc"
            answered = await deliver(dispatcher.base_url, meta.terminate_webhook(call))
            assert answered.status_code == 200 and answered.json()["taken"] == 1
            await asyncio.wait_for(client.ended.wait(), 20)  # the bot hung up after Meta's terminate
        assert await status_once_over(api, session["session_id"]) == "ended"
        timeline = await events_once_stopped(api, session["session_id"])
        kinds = [e["event"] for e in timeline]
        assert "whatsapp_call" in kinds and "stop_requested" in kinds, " ".join(kinds)
        told = [e.get("call_event") for e in timeline if e["event"] == "whatsapp_event"]
        assert told == ["connect", "terminate"], kinds
        assert "terminate" not in call.actions  # Meta ended it: nothing to hang up


async def test_a_whatsapp_call_whose_session_is_stopped_is_hung_up_at_meta(
        meta: FakeWhatsApp, dispatcher: DispatcherProcess) -> None:
    calls: list[FakeWhatsAppCall] = []
    async with api_client(base_url=dispatcher.base_url, timeout=30, headers={"Authorization": f"Bearer {KEY}"}) as api:
        async with caller(meta, dispatcher.base_url, calls):
            session = await session_of(api, calls[0])
            assert (await api.delete(f"/sessions/{session['session_id']}")).status_code in (202, 204)
            assert await meta.eventually(lambda: calls[0].state == "terminated", 20), calls[0].actions
    assert calls[0].actions == ["pre_accept", "accept", "terminate"]
