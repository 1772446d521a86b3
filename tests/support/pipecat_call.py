"""A local dispatcher process running a real bot host on a test bot file, cold, with a WebRTC peer
connected to one session: for tests of what a real Pipecat call reports (its usage, its errors)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.http_client import api_client
from tests.support.processes import DispatcherProcess, run_dispatcher
from tests.support.webrtc_client import WebRTCClient


@dataclass(frozen=True)
class PipecatCall:
    dispatcher: DispatcherProcess
    api: httpx.AsyncClient
    session_id: str
    peer: WebRTCClient  # closed at the block's end; a test may hang up sooner (`await call.peer.close()`)


@asynccontextmanager
async def pipecat_call(tmp_path: Path, bot: Path, key: str | None = None, **env: str) -> AsyncIterator[PipecatCall]:
    """The call, its peer connected until the block ends (the dispatcher and its API until then too).
    A cold Pipecat bot's start is given a busy machine's time, not the default 30 s. `key`: the API
    key the call (and the API's other requests) are made with, where the settings name keys."""
    settings = {"RESERVE_MAX_IDLE": "0", "BOT_FILE": str(bot), "VOICEFLEET_ICE_LOOPBACK": "1",
                "START_WAIT_SECONDS": "120", **env}
    with run_dispatcher(tmp_path, settings) as dispatcher:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        async with api_client(base_url=dispatcher.base_url, timeout=150, headers=headers) as api:
            started = await api.post("/start?wait=started", json={})
            assert started.status_code == 201, started.text
            session_id = started.json()["session_id"]
            async with WebRTCClient(f"{dispatcher.base_url}/sessions/{session_id}/api/offer", ice_loopback=True,
                                    headers=headers) as peer:
                yield PipecatCall(dispatcher, api, session_id, peer)
