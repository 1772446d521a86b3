"""The WebRTC caller as a session drives it (src/voicefleet/loadtest/session.py): the aiortc client
(src/voicefleet/loadtest/webrtc.py) posting its offer to the session's `offer_url`, speaking 16 kHz."""

from __future__ import annotations

import time
from typing import Any

from voicefleet.loadtest.audio import Pcm, loud_segments, resample
from voicefleet.loadtest.webrtc import MIC_RATE, WebRTCClient

CONNECT_TIMEOUT = 60.0  # offer answered → ICE connected; an offer waits for a cold bot before that


class WebRTCCaller:
    def __init__(self, offer_url: str, headers: dict[str, str], ice_config: dict[str, Any] | None) -> None:
        self.client = WebRTCClient(offer_url, headers=headers, ice_config=ice_config, connect_timeout=CONNECT_TIMEOUT)

    async def connect(self) -> None:
        await self.client.connect()

    @property
    def connected_at(self) -> float | None:
        return self.client.connected_at

    def first_frame_at(self) -> float | None:
        times = self.client.recording.times
        return times[0] if times else None

    def first_audio_at(self) -> float | None:
        segments = loud_segments(self.client.recording.times, self.client.recording.levels)
        return segments[0].start if segments else None

    async def turn(self, speech: Pcm, *, listen_seconds: float) -> float | None:
        try:
            result = await self.client.talk(resample(speech, MIC_RATE), listen_seconds=listen_seconds,
                                            until_reply=True)
        except TimeoutError:  # the mic was not drained: aiortc stops taking audio once the connection is down
            state = self.client.pc.connectionState
            if state != "connected":
                raise ConnectionError(f"the peer connection went {state} mid-turn") from None
            raise TimeoutError(self.stall()) from None
        return result.reply_latency

    def stall(self) -> str:
        """Where the caller's audio stopped: aiortc's sender stops the mic when it gives up sending
        (the DTLS or ICE transport no longer connected), else the mic is live and was not asked."""
        transport, mic = self.client.pc.getTransceivers()[0].sender.transport, self.client.mic
        pulled = "never" if mic.last_pulled_at is None else f"{time.monotonic() - mic.last_pulled_at:.1f} s ago"
        return (f"mic {mic.readyState}, last asked for audio {pulled}, {mic.behind():.1f} s behind real time; "
                f"DTLS {getattr(transport, 'state', '?')}, ICE {self.client.pc.iceConnectionState}")

    async def close(self) -> None:
        await self.client.close()
