"""The Moshi example bot (examples/moshi) on the shared model service, all real processes: a local
dispatcher with `MODEL_SERVICE_URL` set, the bot warm under it, the model server stand-in
(tests/fakes/moshi_server.py) on its own, and a WebRTC caller. The caller hears the model; while its
call holds the service's one stream, the next start is refused `model_service_capacity`; and a
service that dies mid-call is the session's error within a second or so, and the call ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.moshi_server import ModelServerProcess, model_server_process
from tests.support.http_client import api_client
from tests.support.moshi_pipeline import MOSHI
from tests.support.processes import DispatcherProcess
from tests.support.realtime_turns import warm_fleet
from tests.support.waiting import until
from voicefleet.loadtest.audio import BOT_AUDIO_RMS
from voicefleet.loadtest.rail import offer_url
from voicefleet.loadtest.webrtc import WebRTCClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
POLL = 30.0  # how long the test looks: room for a busy machine, never part of what is measured
SOON = 2.0  # from the kill to the session's error event on the dispatcher's clock: "about a second"
REPLY_SECONDS = 0.5  # the stand-in's tone
DELAY = 1.0  # the stand-in's answer comes this long after the bot's first audio: the call is up by then


@contextmanager
def moshi_fleet(tmp_path: Path, model: ModelServerProcess) -> Iterator[DispatcherProcess]:
    """A dispatcher admitting against the stand-in, holding one warm Moshi bot that streams to it."""
    env = {"BOT_FILE": str(MOSHI / "bot.py"), "MODEL_SERVICE_URL": model.url, "LOCAL_BOT_ENV": "MODEL_SERVICE_URL",
           # The service's own count shows a stream within a read: no start is counted here past a second.
           "MODEL_SERVICE_READ_SECONDS": "1", "MODEL_SERVICE_CONNECT_SECONDS": "1"}
    with warm_fleet(tmp_path, env) as dispatcher:
        yield dispatcher


async def heard_the_model(client: WebRTCClient) -> None:
    """The caller's track carried most of the stand-in's tone: counted in samples, not by when they
    arrived, which a loaded machine bunches. Nothing else on the line is loud."""
    async def heard() -> bool:
        rec = client.recording
        loud = sum(len(chunk) for chunk, level in zip(rec.chunks, rec.levels, strict=False) if level > BOT_AUDIO_RMS)
        return loud >= REPLY_SECONDS * 0.6 * rec.sample_rate

    await until(heard, "the caller to hear the model's tone", timeout=POLL, interval=0.1)


async def timeline(api: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = (await api.get(f"/sessions/{session_id}/timeline")).json().get("events", [])
    return events


def test_the_caller_hears_the_model_and_a_start_past_its_streams_is_refused(tmp_path: Path) -> None:
    with model_server_process(streams=1, delay=DELAY) as model, moshi_fleet(tmp_path, model) as dispatcher:
        asyncio.run(_call_holding_the_only_stream(dispatcher.base_url))


async def _call_holding_the_only_stream(base_url: str) -> None:
    async with api_client(base_url=base_url, timeout=30) as api:
        answer = (await api.post("/start", json={})).raise_for_status().json()
        async with WebRTCClient(offer_url(base_url, answer), connect_timeout=60) as client:
            await heard_the_model(client)

            async def full() -> dict[str, Any] | None:
                seen: dict[str, Any] = (await api.get("/status")).json()["model_service"]
                return seen if (seen["free"], seen["starting_here"]) == (0, 0) else None

            await until(full, "the service's own count to show the call's stream", timeout=POLL)
            refused = await api.post("/start", json={})
            assert refused.status_code == 503, refused.text
            error = refused.json()["error"]
            assert error["code"] == "model_service_capacity" and "0 of 1 free" in error["message"], error
            assert client.pc.connectionState == "connected"  # the call goes on
        await api.delete(f"/sessions/{answer['session_id']}")


def test_a_service_that_dies_mid_call_is_the_sessions_error_at_once_and_the_call_ends(tmp_path: Path) -> None:
    with model_server_process(streams=1, delay=DELAY) as model, moshi_fleet(tmp_path, model) as dispatcher:
        asyncio.run(_call_outliving_its_model(dispatcher.base_url, model))


async def _call_outliving_its_model(base_url: str, model: ModelServerProcess) -> None:
    async with api_client(base_url=base_url, timeout=30) as api:
        answer = (await api.post("/start", json={})).raise_for_status().json()
        session_id = answer["session_id"]
        async with WebRTCClient(offer_url(base_url, answer), connect_timeout=60) as client:
            await heard_the_model(client)
            killed_at = time.time()  # before the kill: the measured span can only be longer than the real one
            await asyncio.to_thread(model.die)

            async def reported() -> list[dict[str, Any]]:
                return [e for e in await timeline(api, session_id) if e.get("event") == "error"]

            errors = await until(reported, "the model service's failure on the timeline", timeout=POLL, interval=0.1)
            assert "MoshiService" in str(errors) and "the model service cut the stream mid-call" in str(errors), errors
            assert errors[0]["at"] - killed_at < SOON, (errors, killed_at)
            session = (await api.get(f"/sessions/{session_id}")).json()
            assert "the model service cut the stream mid-call" in str(session["error"]), session

            async def ended() -> dict[str, Any] | None:
                found: dict[str, Any] = (await api.get(f"/sessions/{session_id}")).json()
                return found if found["status"] in ("ended", "failed") else None

            end = await until(ended, "the call to end", timeout=POLL, interval=0.2)
            assert "the model service cut the stream mid-call" in str(end["error"]), end

            async def hung_up() -> bool:
                return client.pc.connectionState in ("closed", "failed", "disconnected")

            await until(hung_up, "the caller's connection to close", timeout=POLL, interval=0.2)
