"""The load test's WebRTC caller keeps its speech in real time when the machine is loaded: its mic
hands aiortc Opus it encoded itself, so no 20 ms frame waits for a thread of the default pool. On a
2-core machine at a load average of 10-13, each such hop (a core, the GIL) could take longer than
the frame lasts, and a 4 s turn fell 4 s behind (`speech_not_sent`). Here the pool is made as slow
as that machine's, and a second aiortc peer in this process answers and hears the speech."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from voicefleet.loadtest.audio import Pcm
from voicefleet.loadtest.webrtc import MIC_RATE, WebRTCClient

HOP_SECONDS = 0.15  # each hop into the pool: far past a 20 ms frame, as on a loaded machine
SPEECH = Pcm((np.sin(2 * np.pi * 300 * np.arange(MIC_RATE) / MIC_RATE) * 8000).astype(np.int16), MIC_RATE)


class LoadedPool(ThreadPoolExecutor):
    """The default executor of a loaded machine: every call waits `HOP_SECONDS` for its turn."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        def late() -> Any:
            time.sleep(HOP_SECONDS)
            return fn(*args, **kwargs)

        return super().submit(late)


async def test_the_speech_is_all_sent_in_time_however_slow_the_thread_pool() -> None:
    pool = LoadedPool(max_workers=4)
    asyncio.get_running_loop().set_default_executor(pool)
    callee = RTCPeerConnection()
    heard: list[int] = []

    @callee.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        async def listen() -> None:
            while True:
                frame = await track.recv()
                heard.append(int(np.abs(frame.to_ndarray()).max()))

        asyncio.get_running_loop().create_task(listen())

    async def answer(offer: dict[str, Any]) -> dict[str, Any]:
        await callee.setRemoteDescription(RTCSessionDescription(sdp=offer["sdp"], type=offer["type"]))
        await callee.setLocalDescription(await callee.createAnswer())
        return {"sdp": callee.localDescription.sdp, "type": callee.localDescription.type}

    try:
        async with WebRTCClient("in-process", signal=answer, ice_loopback=True, connect_timeout=30) as client:
            began = time.monotonic()
            await client.talk(SPEECH, listen_seconds=0.0, lead_seconds=0.0)  # TimeoutError: not all sent
            took = time.monotonic() - began
            assert client.mic.last_speech_at is not None
    finally:
        await callee.close()
        pool.shutdown(wait=False, cancel_futures=True)
    # Each frame through the pool would take HOP_SECONDS: the second of speech, 7.5 s.
    assert took < SPEECH.seconds + 50 * HOP_SECONDS / 2, took
    assert max(heard, default=0) > 1000, "the callee never heard the speech"
