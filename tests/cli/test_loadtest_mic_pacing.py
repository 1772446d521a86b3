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
import pytest
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription

from voicefleet.loadtest.audio import Pcm
from voicefleet.loadtest.lag import SpeechLate
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


class SlowMic:
    """A mic whose sender asks for audio every `every` seconds (None: never) and is drained after `drains_after`."""

    def __init__(self, every: float | None, drains_after: float | None) -> None:
        self.drained = asyncio.Event()
        self.last_pulled_at: float | None = None
        self._every, self._drains_after = every, drains_after

    async def run(self) -> None:
        began = time.monotonic()
        while True:
            if self._drains_after is not None and time.monotonic() - began >= self._drains_after:
                self.drained.set()
                return
            if self._every is not None:
                self.last_pulled_at = time.monotonic()
            await asyncio.sleep(self._every or 0.05)

    def behind(self) -> float:
        return 0.0


@pytest.mark.parametrize(("every", "drains_after", "late_after"), [
    (0.1, 1.6, None),  # asked all along, slower than real time: sent, however long past its 1 s
    (None, None, 1.0),  # never asked: the connection takes no audio, given up on after 1 s
    (0.1, None, 3.0),  # asked all along yet never done: given up on at SLOWEST times 1 s
])
async def test_a_turns_speech_is_waited_for_while_its_connection_takes_it(every: float | None,
                                                                          drains_after: float | None,
                                                                          late_after: float | None) -> None:
    client = WebRTCClient("in-process", signal=lambda offer: asyncio.sleep(0, {}))
    mic = SlowMic(every, drains_after)
    client.mic = mic  # type: ignore[assignment]
    running = asyncio.create_task(mic.run())
    began = time.monotonic()
    try:
        if late_after is None:
            await client._sent(1.0)
        else:
            with pytest.raises(SpeechLate):
                await client._sent(1.0)
            assert late_after - 0.1 <= time.monotonic() - began < late_after + 1.0
    finally:
        running.cancel()
        await client.pc.close()
