"""The caller hangs up even when aiortc's own close never finishes. When the far end hangs up, aiortc
closes the connection in a task of its own, and a later close() awaits that task's future; a loop
shutting down cancels every task (pytest-asyncio's teardown of a failed test, Ctrl-C in `voicefleet
loadtest`), so the future may never be resolved. That state is made here directly, by aiortc's own
future (the timing of a real hang-up against a cancel is not reproducible)."""

from __future__ import annotations

import asyncio

import pytest

from voicefleet.loadtest import webrtc
from voicefleet.loadtest.webrtc import WebRTCClient


async def test_a_caller_whose_connection_was_being_closed_by_a_cancelled_task_still_hangs_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webrtc, "CLOSE_SECONDS", 0.2)
    client = WebRTCClient("http://127.0.0.1:9/api/offer")
    abandoned: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    client.pc._RTCPeerConnection__isClosed = abandoned  # aiortc's closing task, cancelled half-way
    await asyncio.wait_for(client.close(), 10)


async def test_a_caller_that_never_connected_hangs_up_at_once() -> None:
    client = WebRTCClient("http://127.0.0.1:9/api/offer")
    await asyncio.wait_for(client.close(), 10)
    assert client.pc.connectionState == "closed"
