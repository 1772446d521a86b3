"""A client flooding its call's socket with frames, through the real dispatcher process: the socket
is closed with 1008 once past PHONE_MAX_FRAMES_PER_SECOND, the dispatcher's CPU stays bounded, and
the session's timeline and the metrics say why. A carrier's own cadence (tests/phone/test_calls.py)
never reaches the bound."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from bench.pinning import cpu_seconds
from tests.fakes.carriers import CarrierCall
from tests.phone.conftest import metric, wait_active_sessions, wait_for_idle_bot
from tests.phone.test_calls import CUSTOM
from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess

pytestmark = pytest.mark.slow  # a real dispatcher and bot process

FLOOD = 100_000  # frames the client may send as fast as it can: ~1.5 s of the dispatcher's CPU, relayed
CLOSED = 'voicefleet_phone_frame_rate_closes_total{provider="local",side="caller"}'


async def test_a_client_flooding_frames_is_closed_with_1008_and_costs_the_dispatcher_little(
    phone_dispatcher: tuple[DispatcherProcess, Path],
) -> None:
    dispatcher, _ = phone_dispatcher
    async with api_client(base_url=dispatcher.base_url, timeout=30) as api:
        await wait_for_idle_bot(api)
        closed_before = await metric(api, CLOSED)
        start = (await api.post("/start", json={"transport": "twilio", "body": {}})).json()
        call = CarrierCall("twilio", f"{start['wsUrl']}/{start['token']}", custom=CUSTOM)
        await call.open()
        await call.handshake(stream=False)
        await call.bot_audio(0.1, timeout=30)  # the bot answered: frames now cross the relay
        assert call.ws is not None
        frame = json.dumps({"event": "media", "streamSid": call.stream_id,
                            "media": {"track": "inbound", "payload": base64.b64encode(bytes(160)).decode()}})

        async def drain() -> None:  # what the bot still sends, read so its socket never backs up
            with contextlib.suppress(ConnectionClosed):
                async for _ in call.ws:  # type: ignore[union-attr]
                    pass

        reading = asyncio.create_task(drain())
        cpu_before = cpu_seconds(dispatcher.process.pid)
        sent = 0
        with contextlib.suppress(ConnectionClosed):
            for _ in range(FLOOD):
                await call.ws.send(frame)
                sent += 1
                if sent % 100 == 0:
                    await asyncio.sleep(0)  # the client reads what the dispatcher said (its close)
        await asyncio.wait_for(reading, 10)
        await asyncio.sleep(0.5)  # the call's end: its bot stopped, the relay closed
        cpu = cpu_seconds(dispatcher.process.pid) - cpu_before

        assert call.ws.close_code == 1008
        assert call.ws.close_reason == "the caller sent more than 250 frames or 1 MiB a second"
        # The bound's burst (1,250) was relayed, the frames in flight when the socket closed were read
        # and dropped, and the client stopped at the close: nowhere near its 100,000.
        assert sent < FLOOD / 4
        assert cpu < 0.5, f"the dispatcher spent {cpu:.2f} s of CPU on {sent} frames"
        assert await wait_active_sessions(api, 0) == 0  # the call's machine ended, as at a hang-up
        assert await metric(api, CLOSED) == closed_before + 1
        events = (await api.get(f"/sessions/{start['sessionId']}/timeline")).json()["events"]
        closed = [e for e in events if e["event"] == "media_closed"]
        assert len(closed) == 1
        assert closed[0]["side"] == "caller" and closed[0]["reason"] == "frame_rate" and closed[0]["limit"] == 250
        names = [e["event"] for e in events]
        assert names.index("media_closed") < names.index("stop_requested")
    assert dispatcher.log().count("sent more than 250 frames or 1 MiB a second; its socket closed (1008)") == 1
