"""A converged bot's slow answer, for the session's timeline: the caller's last speech to the model's
first audio past `SLOW_ANSWER_SECONDS`.

A speech-to-speech vendor finds the end of the caller's turn itself (its server VAD), so no frame
marks it for every vendor (Gemini Live pushes none): the turn's end is the caller's last loud audio
into the pipeline, and the answer starts with the `TTSStartedFrame` the service pushes with its first
audio. The span holds the vendor's own end-of-turn wait (OpenAI's default 0.5 s of silence), so the
bound leaves room for it; a vendor taking 2 s to its first byte is well past it. An observer the host
adds to the user's worker (bot/watch.py); only a pipeline with a converged service is measured.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import numpy as np
from loguru import logger
from pipecat.frames.frames import InputAudioRawFrame, StartFrame, TTSStartedFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.transports.base_input import BaseInputTransport

SLOW_ANSWER_SECONDS = 2.0
LOUD_RMS = 300.0  # 16-bit PCM: above a quiet line's noise, well below speech
MAX_REPORTS = 10  # a vendor slow on every turn: the first few say it all
CONVERGED = ("RealtimeLLMService", "GeminiLiveLLMService")  # class names the services' end with

Report = Callable[[str], Awaitable[None]]  # the detail


class SlowAnswers(BaseObserver):
    def __init__(self) -> None:
        super().__init__()
        self.on_slow: Report | None = None
        self.reports = 0
        self._measuring = False  # a converged service is in the pipeline
        self._last_loud: float | None = None  # the caller's last loud audio of a turn not yet answered

    async def on_push_frame(self, data: FramePushed) -> None:
        frame, source = data.frame, data.source
        if isinstance(frame, InputAudioRawFrame) and isinstance(source, BaseInputTransport):
            if self._measuring and _loud(frame.audio):
                self._last_loud = time.monotonic()
        elif isinstance(frame, TTSStartedFrame) and _converged(source):
            await self._answered(getattr(source, "name", type(source).__name__))
        elif isinstance(frame, StartFrame) and _converged(source):
            self._measuring = True

    async def _answered(self, service: str) -> None:
        if self._last_loud is None:
            return  # the bot spoke first, or twice: no turn of the caller's to time
        seconds, self._last_loud = time.monotonic() - self._last_loud, None
        if seconds <= SLOW_ANSWER_SECONDS or self.on_slow is None:
            return
        self.reports += 1
        if self.reports > MAX_REPORTS:
            return
        try:
            await self.on_slow(f"{service}: the model's first audio came {seconds:.1f} s after the caller's last "
                               f"speech (over {SLOW_ANSWER_SECONDS:g} s, the model's own end-of-turn wait included)")
        except Exception:  # a report must never break the user's pipeline
            logger.exception("slow_answer report failed")


def _converged(source: object) -> bool:
    return type(source).__name__.endswith(CONVERGED)


def _loud(audio: bytes) -> bool:
    samples = np.frombuffer(audio[: len(audio) // 2 * 2], dtype="<i2").astype(np.float32)
    return samples.size > 0 and float(np.sqrt(np.mean(samples * samples))) > LOUD_RMS
