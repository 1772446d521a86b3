"""A VAD processor that also says when speech *may* be starting, and runs its own `stop_secs`.

Pipecat's `VADProcessor` reports the start of speech only once `start_secs` (0.2 s) of it have
been heard. That is right for deciding a new turn, and too late for taking back a reply that
was started after a short pause: by then the bot would have talked over the user for 0.2 s.
`OnsetVADProcessor` additionally pushes

- `UserSpeechOnsetFrame` on the first analysed window that counts as speech (the analyzer goes
  QUIET → STARTING: 30-150 ms after the voice resumes on the fixtures, as Silero's confidence and
  the smoothed volume rise; `VADUserStartedSpeakingFrame` comes ~0.16 s after that), and
- `UserSpeechOnsetLostFrame` when that onset dies out before `start_secs` confirmed it
  (STARTING → QUIET: a click or a breath, not speech),

in order with the audio, so a processor can cancel its reply at once and, on a false alarm,
answer again. `VADUserStartedSpeakingFrame` still follows a real onset as before.

The analyzer starts primed with `QUIET_LEAD_SECS` of silence, so speech from a call's first frames
is heard as promptly as later speech (docs/bot.md, Speech from a call's first frames).

`stop_secs`, when given, replaces the analyzer's own value for this pipeline (through the
analyzer's public `set_params` once its sample rate is known), so one loaded analyzer can serve
pipelines with different turn-taking without loading the model twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADState
from pipecat.audio.volume import VOLUME_WINDOW_SECS
from pipecat.frames.frames import Frame, InputAudioRawFrame, SystemFrame
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.processors.frame_processor import FrameDirection, FrameProcessorSetup


@dataclass
class UserSpeechOnsetFrame(SystemFrame):
    """The VAD heard a first window of speech; `VADUserStartedSpeakingFrame` may follow."""


@dataclass
class UserSpeechOnsetLostFrame(SystemFrame):
    """The onset reported before ended without becoming speech."""


QUIET_LEAD_SECS = VOLUME_WINDOW_SECS  # the silence the analyzer is primed with: one loudness window


class OnsetVADProcessor(VADProcessor):
    def __init__(self, *, vad_analyzer: VADAnalyzer, stop_secs: float | None = None, **kwargs: Any) -> None:
        super().__init__(vad_analyzer=vad_analyzer, **kwargs)
        self._analyzer = vad_analyzer
        self._stop_secs = stop_secs
        self._state = VADState.QUIET
        # The analyzer returns STARTING from `analyze_audio`, but Pipecat's controller keeps only
        # QUIET/SPEAKING. This instance attribute shadows the class's method for this analyzer
        # (removed in cleanup); it calls the class's own method, so a second processor built on
        # the same analyzer replaces the hook instead of stacking on it.
        analyze = type(vad_analyzer).analyze_audio

        async def analyze_audio(buffer: bytes) -> VADState:
            self._state = await analyze(vad_analyzer, buffer)
            return self._state

        vad_analyzer.analyze_audio = analyze_audio  # type: ignore[method-assign]
        self._hook = analyze_audio

    async def setup(self, setup: FrameProcessorSetup) -> None:  # type: ignore[override]  # as pipecat's own
        await super().setup(setup)  # sets the analyzer's sample rate (and its own params)
        if self._stop_secs is not None:
            self._analyzer.set_params(self._analyzer.params.model_copy(update={"stop_secs": self._stop_secs}))
        quiet = bytes(2 * self._analyzer.num_channels * round(QUIET_LEAD_SECS * self._analyzer.sample_rate))
        await self._analyzer.analyze_audio(quiet)

    async def cleanup(self) -> None:
        if self._analyzer.__dict__.get("analyze_audio") is self._hook:  # not a later processor's
            del self._analyzer.__dict__["analyze_audio"]
        await super().cleanup()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        before = self._state
        await super().process_frame(frame, direction)  # pushes the audio on, then analyses it
        if not isinstance(frame, InputAudioRawFrame):
            return
        after = self._state
        if before == VADState.QUIET and after == VADState.STARTING:
            await self.push_frame(UserSpeechOnsetFrame())
        elif before == VADState.STARTING and after == VADState.QUIET:
            await self.push_frame(UserSpeechOnsetLostFrame())
