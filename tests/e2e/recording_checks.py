"""What the recording tests measure: a kept session's WAV, its timeline, its artifacts (polled)."""

from __future__ import annotations

import asyncio
import io
import wave
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from tests.fakes.carriers import CarrierCall
from tests.support.audio import SPEECH_RMS, loud_segments

WINDOW_SECONDS = 0.05


@dataclass(frozen=True)
class Stereo:
    left: np.ndarray
    right: np.ndarray
    sample_rate: int

    @property
    def seconds(self) -> float:
        return len(self.left) / self.sample_rate


def read_stereo(data: bytes) -> Stereo:
    """A WAV's two channels, read with the standard library's reader from the header's sizes."""
    with wave.open(io.BytesIO(data), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2), "a two-channel 16-bit recording"
        frames = wav.readframes(wav.getnframes())
        rate = wav.getframerate()
    samples = np.frombuffer(frames, dtype="<i2").reshape(-1, 2)
    return Stereo(samples[:, 0].copy(), samples[:, 1].copy(), rate)


def loud_seconds(samples: np.ndarray, rate: int) -> list[tuple[float, float]]:
    """(start, end) of the stretches louder than speech, in seconds from the recording's start."""
    step = int(rate * WINDOW_SECONDS)
    times = [i * WINDOW_SECONDS for i in range(len(samples) // step)]
    levels = [float(np.sqrt(np.mean(samples[i * step:(i + 1) * step].astype(np.float64) ** 2)))
              for i in range(len(times))]
    return [(s.start, s.end) for s in loud_segments(times, levels, threshold=SPEECH_RMS)]


async def twilio_call(api: httpx.AsyncClient) -> tuple[str, CarrierCall]:
    """A session started for a Twilio media stream and the fake carrier's call on it, its line
    running (silence unless the caller speaks): the session's id and the call."""
    answer = await api.post("/start", json={"transport": "twilio"})
    assert answer.status_code == 201, answer.text
    call = CarrierCall("twilio", f"{answer.json()['wsUrl']}/{answer.json()['token']}")
    await call.open()
    await call.handshake()
    return answer.json()["sessionId"], call


async def artifacts_when_kept(api: httpx.AsyncClient, session_id: str, names: set[str],
                              polls: int = 600) -> dict[str, Any]:
    """The session's artifacts once `names` are all listed (the upload is completed in the background)."""
    answer: httpx.Response | None = None
    for _ in range(polls):
        answer = await api.get(f"/sessions/{session_id}/artifacts")
        if answer.status_code == 200 and names <= {a["name"] for a in answer.json()["artifacts"]}:
            return dict(answer.json())
        await asyncio.sleep(0.1)
    raise AssertionError(f"artifacts {names} not kept: {answer.status_code if answer else None} "
                         f"{answer.text if answer else ''}")


async def timeline_event(api: httpx.AsyncClient, session_id: str, event: str, polls: int = 600) -> dict[str, Any]:
    for _ in range(polls):
        events = (await api.get(f"/sessions/{session_id}/timeline")).json().get("events", [])
        found = next((e for e in events if e.get("event") == event), None)
        if found is not None:
            return dict(found)
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {event} on the timeline of {session_id}")
