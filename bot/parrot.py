"""The keyless default pipeline's brain: answer each utterance by echoing it back after a beep.

`Parrot` sits after a `VADProcessor`. It keeps a short pre-roll of the user's audio (the VAD
reports the start of speech ~0.2 s late), records until the VAD says the user stopped, then
pushes a beep followed by the recording. Replies are `SpeechOutputAudioRawFrame`s so the output
transport treats them as bot speech (BotStarted/StoppedSpeaking frames, idle-timeout activity).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from loguru import logger
from pipecat.frames.frames import (
    Frame,
    InputAudioRawFrame,
    SpeechOutputAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

REPLY_BEEP_HZ = 880.0
REPLY_BEEP_SECONDS = 0.12
GREETING_HZ = 440.0
GREETING_SECONDS = 0.2


def tone(frequency: float, seconds: float, sample_rate: int, *, amplitude: float = 0.25) -> bytes:
    """A mono 16-bit sine tone with 5 ms fades, so it starts and stops without a click."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = np.sin(2 * np.pi * frequency * t) * amplitude
    fade = min(len(wave) // 2, int(0.005 * sample_rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        wave[:fade] *= ramp
        wave[-fade:] *= ramp[::-1]
    return (wave * 32767).astype(np.int16).tobytes()


def greeting_frame(sample_rate: int = 16000) -> SpeechOutputAudioRawFrame:
    """A short tone that tells the user the bot is listening."""
    return SpeechOutputAudioRawFrame(
        audio=tone(GREETING_HZ, GREETING_SECONDS, sample_rate), sample_rate=sample_rate, num_channels=1
    )


class Parrot(FrameProcessor):
    """Buffers each VAD-delimited utterance and answers it with a beep plus the utterance."""

    def __init__(self, *, preroll_seconds: float = 0.4, max_utterance_seconds: float = 15.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._preroll_seconds = preroll_seconds
        self._max_utterance_seconds = max_utterance_seconds
        self._preroll: deque[InputAudioRawFrame] = deque()
        self._preroll_frames = 0
        self._utterance: list[InputAudioRawFrame] | None = None  # None: the user is not speaking
        self._utterance_frames = 0
        self.replies = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            # Consumed here: the user's audio is the parrot's input, not something to play.
            self._hear(frame)
            return
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._utterance = list(self._preroll)
            self._utterance_frames = self._preroll_frames
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._utterance is not None:
            utterance, self._utterance = self._utterance, None
            await self._reply(utterance)
        await self.push_frame(frame, direction)

    def _hear(self, frame: InputAudioRawFrame) -> None:
        if self._utterance is not None:
            # Long monologues are cut, not buffered without bound.
            if self._utterance_frames < self._max_utterance_seconds * frame.sample_rate:
                self._utterance.append(frame)
                self._utterance_frames += frame.num_frames
            return
        self._preroll.append(frame)
        self._preroll_frames += frame.num_frames
        while self._preroll and self._preroll_frames - self._preroll[0].num_frames >= (
            self._preroll_seconds * frame.sample_rate
        ):
            self._preroll_frames -= self._preroll.popleft().num_frames

    async def _reply(self, utterance: list[InputAudioRawFrame]) -> None:
        self._preroll.clear()
        self._preroll_frames = 0
        if not utterance:
            return
        sample_rate, channels = utterance[0].sample_rate, utterance[0].num_channels
        # Mixed formats cannot be concatenated as bytes; keep the frames matching the first one.
        audio = b"".join(f.audio for f in utterance if (f.sample_rate, f.num_channels) == (sample_rate, channels))
        beep = tone(REPLY_BEEP_HZ, REPLY_BEEP_SECONDS, sample_rate)
        if channels > 1:
            beep = np.repeat(np.frombuffer(beep, dtype=np.int16), channels).tobytes()
        self.replies += 1
        logger.info(f"parrot: replying to a {len(audio) / (2 * channels * sample_rate):.2f} s utterance")
        for chunk in (beep, audio):
            await self.push_frame(
                SpeechOutputAudioRawFrame(audio=chunk, sample_rate=sample_rate, num_channels=channels)
            )
