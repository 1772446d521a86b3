"""Parrot: each VAD-delimited utterance is answered with a beep and then the utterance itself."""

from __future__ import annotations

import numpy as np
from parrot import REPLY_BEEP_SECONDS, TRAILING_SILENCE_SECS, Parrot
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import (
    InputAudioRawFrame,
    SpeechOutputAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.processors.audio.vad_processor import VADProcessor
from pipecat.tests.utils import run_test

from tests.bot.conftest import SPEECH_WAV
from tests.support.audio import read_wav, rms
from tests.support.parrot_turns import BLOCK, RATE, audio_frames


def replies(frames: object) -> list[SpeechOutputAudioRawFrame]:
    return [f for f in frames if isinstance(f, SpeechOutputAudioRawFrame)]  # type: ignore[attr-defined]


async def test_parrot_answers_an_utterance_with_a_beep_then_the_utterance() -> None:
    speech = read_wav(SPEECH_WAV).samples[: RATE // 2]  # 0.5 s is plenty for the processor
    before = np.full(RATE // 10, 7, dtype=np.int16)  # 0.1 s heard before the VAD fired: pre-roll
    down, _ = await run_test(
        Parrot(),
        frames_to_send=[
            *audio_frames(before),
            VADUserStartedSpeakingFrame(),
            *audio_frames(speech),
            VADUserStoppedSpeakingFrame(),
        ],
    )
    beep, echo, end = replies(down)
    assert len(beep.audio) == int(REPLY_BEEP_SECONDS * RATE) * 2
    assert rms(np.frombuffer(beep.audio, dtype=np.int16)) > 1000
    expected = np.concatenate([before, speech[: len(speech) // BLOCK * BLOCK]]).tobytes()
    assert echo.audio == expected
    assert (echo.sample_rate, echo.num_channels) == (RATE, 1)
    # Then silence, in which Pipecat's output sees the bot's speech end (not 3 s later, for want of audio).
    assert end.audio == bytes(2 * int(TRAILING_SILENCE_SECS * RATE))


async def test_parrot_consumes_the_users_audio_instead_of_playing_it() -> None:
    down, _ = await run_test(Parrot(), frames_to_send=audio_frames(np.zeros(RATE, dtype=np.int16)))
    assert not any(isinstance(f, InputAudioRawFrame) for f in down)
    assert replies(down) == []


async def test_parrot_keeps_only_the_pre_roll_before_speech() -> None:
    long_silence = np.zeros(2 * RATE, dtype=np.int16)
    down, _ = await run_test(
        Parrot(preroll_seconds=0.2),
        frames_to_send=[*audio_frames(long_silence), VADUserStartedSpeakingFrame(), VADUserStoppedSpeakingFrame()],
    )
    _, echo, _ = replies(down)
    assert len(echo.audio) == int(0.2 * RATE) * 2


async def test_parrot_with_silero_vad_replies_once_to_the_fixture_sentence() -> None:
    speech = read_wav(SPEECH_WAV).samples
    silence = np.zeros(RATE, dtype=np.int16)
    down, _ = await run_test(
        Pipeline([VADProcessor(vad_analyzer=SileroVADAnalyzer()), Parrot()]),
        frames_to_send=audio_frames(np.concatenate([silence, speech, silence])),
    )
    beeps_and_echoes = replies(down)
    assert len(beeps_and_echoes) == 3, "one utterance: one beep, one echo and the silence after them"
    echoed_seconds = len(beeps_and_echoes[1].audio) / 2 / RATE
    assert echoed_seconds > 0.8 * len(speech) / RATE
