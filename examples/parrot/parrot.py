"""The keyless default pipeline's brain: answer each utterance by echoing it back after a beep.

`Parrot` sits after a VAD processor. It keeps a short pre-roll of the user's audio (the VAD
reports the start of speech ~0.2 s late), records until the VAD says the user stopped, then
pushes a beep followed by the recording. Replies are `SpeechOutputAudioRawFrame`s so the output
transport treats them as bot speech (BotStarted/StoppedSpeaking frames, idle-timeout activity);
each sound ends with silence, in which the output sees the bot's speech end.

Replies are interruption-safe (with `turn_vad.OnsetVADProcessor` in front): the VAD's
`stop_secs` can be short because a reply is only tentative for `resume_secs` of audio after the
stop. If the user's voice comes back within that window (`UserSpeechOnsetFrame`), the reply is
taken back (an `InterruptionFrame` clears it from the output) and the recording goes on: the
pause and what follows belong to the same utterance, answered once when it really ends. If the
onset turns out not to be speech (`UserSpeechOnsetLostFrame`), the whole utterance is answered
again. Speech that starts after the window is a new utterance, answered after the current reply.
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
from pipecat.transports.base_output import BOT_VAD_STOP_SECS
from turn_vad import UserSpeechOnsetFrame, UserSpeechOnsetLostFrame

REPLY_BEEP_HZ = 880.0
REPLY_BEEP_SECONDS = 0.12
# The parrot's VAD `stop_secs` (Pipecat's default 0.2): one 32 ms VAD window sooner, safe because
# the reply stays retractable for `resume_secs` (bench/vad_stop_secs.py shows the turns it makes).
PARROT_STOP_SECS = 0.15
GREETING_HZ = 440.0
GREETING_SECONDS = 0.2
# Each sound ends with silence: Pipecat's output takes `SpeechOutputAudioRawFrame`s as one stream and
# ends the bot's speech after BOT_VAD_STOP_SECS of silence in it, else only after 3 s with no audio
# at all. Without it a reply within 3 s of the sound before (the greeting) was told as part of that
# one, with no bot-started-speaking of its own. A WebSocket output sends at twice real time: twice
# the stop's seconds of silence, and a margin.
TRAILING_SILENCE_SECS = 2 * BOT_VAD_STOP_SECS + 0.3


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


def trailing_silence(sample_rate: int, channels: int = 1) -> bytes:
    return bytes(2 * channels * int(TRAILING_SILENCE_SECS * sample_rate))


def greeting_frame(sample_rate: int = 16000) -> SpeechOutputAudioRawFrame:
    """A short tone that tells the user the bot is listening."""
    return SpeechOutputAudioRawFrame(
        audio=tone(GREETING_HZ, GREETING_SECONDS, sample_rate) + trailing_silence(sample_rate),
        sample_rate=sample_rate, num_channels=1,
    )


class Parrot(FrameProcessor):
    """Buffers each VAD-delimited utterance and answers it with a beep plus the utterance."""

    def __init__(
        self,
        *,
        preroll_seconds: float = 0.4,
        max_utterance_seconds: float = 15.0,
        resume_secs: float = 0.3,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._preroll_seconds = preroll_seconds
        self._max_utterance_seconds = max_utterance_seconds
        self._resume_secs = resume_secs
        self._preroll: deque[InputAudioRawFrame] = deque()
        self._preroll_frames = 0
        self._utterance: list[InputAudioRawFrame] | None = None  # None: the user is not speaking
        self._utterance_frames = 0
        # The last answered utterance (plus what was heard since) while its reply is tentative.
        self._answered: list[InputAudioRawFrame] | None = None
        self._since_answer = 0  # samples heard since the reply started; counted in audio, not wall time
        self._unconfirmed_onset = False  # recording resumed on an onset the VAD has not confirmed
        self.replies = 0
        self.retracted = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            # Consumed here: the user's audio is the parrot's input, not something to play.
            self._hear(frame)
            return
        if isinstance(frame, UserSpeechOnsetFrame):
            if self._answered is not None:
                await self._retract()
            return  # the onset frames are for this processor only
        if isinstance(frame, UserSpeechOnsetLostFrame):
            if self._unconfirmed_onset and self._utterance is not None:
                # Not speech after all: the utterance had ended; answer all of it again.
                utterance, self._utterance = self._utterance, None
                await self._reply(utterance)
            self._unconfirmed_onset = False
            return
        if isinstance(frame, VADUserStartedSpeakingFrame):
            if self._answered is not None:  # speech came back without an onset frame (a burst of audio)
                await self._retract()
            if self._utterance is None:
                self._start_utterance(list(self._preroll))
            self._unconfirmed_onset = False
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._utterance is not None:
            utterance, self._utterance = self._utterance, None
            await self._reply(utterance)
        await self.push_frame(frame, direction)

    def _start_utterance(self, frames: list[InputAudioRawFrame]) -> None:
        self._utterance = frames
        self._utterance_frames = sum(f.num_frames for f in frames)

    async def _retract(self) -> None:
        """The user went on speaking within `resume_secs`: take the reply back, keep recording."""
        answered, self._answered = self._answered, None
        self.retracted += 1
        logger.info("parrot: the user went on speaking; reply taken back, the utterance continues")
        await self.broadcast_interruption()
        self._start_utterance(answered or [])
        self._unconfirmed_onset = True

    def _hear(self, frame: InputAudioRawFrame) -> None:
        if self._utterance is not None:
            # Long monologues are cut, not buffered without bound.
            if self._utterance_frames < self._max_utterance_seconds * frame.sample_rate:
                self._utterance.append(frame)
                self._utterance_frames += frame.num_frames
            return
        if self._answered is not None:
            # The pause after a tentative reply: part of the utterance if the user goes on.
            self._answered.append(frame)
            self._since_answer += frame.num_frames
            if self._since_answer >= self._resume_secs * frame.sample_rate:
                self._answered = None  # the reply is final; what follows is a new utterance
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
        self._answered, self._since_answer = list(utterance), 0
        sample_rate, channels = utterance[0].sample_rate, utterance[0].num_channels
        # Mixed formats cannot be concatenated as bytes; keep the frames matching the first one.
        audio = b"".join(f.audio for f in utterance if (f.sample_rate, f.num_channels) == (sample_rate, channels))
        beep = tone(REPLY_BEEP_HZ, REPLY_BEEP_SECONDS, sample_rate)
        if channels > 1:
            beep = np.repeat(np.frombuffer(beep, dtype=np.int16), channels).tobytes()
        self.replies += 1
        logger.info(f"parrot: replying to a {len(audio) / (2 * channels * sample_rate):.2f} s utterance")
        for chunk in (beep, audio, trailing_silence(sample_rate, channels)):
            await self.push_frame(
                SpeechOutputAudioRawFrame(audio=chunk, sample_rate=sample_rate, num_channels=channels)
            )
