"""Interruption-safe replies: a short pause does not split an utterance, a long one ends the turn.

The parrot's VAD ends a turn after `PARROT_STOP_SECS` (0.15 s) of quiet, so a mid-sentence pause
of ~300 ms makes it start a reply to half a sentence. That reply must be taken back (an
`InterruptionFrame` right after it) as soon as the voice resumes, and the whole sentence answered
once (tests/support/parrot_turns.py says how replies are judged).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from parrot import Parrot
from pipecat.audio.vad.silero import SileroVADAnalyzer
from pipecat.frames.frames import Frame, VADUserStartedSpeakingFrame, VADUserStoppedSpeakingFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.tests.utils import run_test
from turn_vad import OnsetVADProcessor, UserSpeechOnsetFrame, UserSpeechOnsetLostFrame

from tests.bot.conftest import SPEECH_WAV
from tests.support.audio import read_wav
from tests.support.parrot_turns import BLOCK, RATE, PushOrder, audio_frames, converse, played_replies
from tests.support.speech_pauses import PAUSED_SENTENCE, TWO_SENTENCES, load, pause_span


def seconds(audio: bytes) -> float:
    return len(audio) / 2 / RATE


@pytest.mark.parametrize("pause", [0.15, 0.2, 0.3])
async def test_a_mid_sentence_pause_gets_one_reply_to_the_whole_sentence(pause: float) -> None:
    speech = load(PAUSED_SENTENCE, pause)
    echoes, _ = await converse(speech)
    assert len(echoes) == 1, f"{len(echoes)} replies stand for one sentence with a {pause} s pause"
    assert seconds(echoes[0]) > 0.8 * speech.seconds, "the echo holds both halves and the pause"


async def test_the_reply_started_in_a_300ms_pause_is_taken_back_when_speech_resumes() -> None:
    # Proves the case is real: at 0.15 s the VAD does end the turn inside this pause.
    parrot = Parrot()
    echoes, taken_back = await converse(load(PAUSED_SENTENCE), parrot)
    assert taken_back == 1 and parrot.retracted == 1
    assert len(echoes) == 1


async def test_two_sentences_600ms_apart_are_two_turns_with_one_reply_each() -> None:
    speech = load(TWO_SENTENCES)
    echoes, taken_back = await converse(speech)
    assert taken_back == 0
    assert len(echoes) == 2
    start, end = pause_span(speech.samples)
    first, second = start / RATE, (len(speech.samples) - end) / RATE
    assert 0.8 * first < seconds(echoes[0]) < first + 0.6, "the first echo holds the first sentence only"
    assert 0.8 * second < seconds(echoes[1]) < second + 0.6, "the second echo holds the second one"


@pytest.mark.parametrize("lead", [0.0, 0.1, 0.2])
async def test_speech_from_the_first_frames_of_a_call_is_echoed_from_its_first_word(lead: float) -> None:
    """A caller who talks at once (0.1 s into the greeting) is heard from their first word: Pipecat's VAD
    measures loudness over 0.4 s of audio and reads none before it has that much, which held the start of
    speech back by ~0.5 s, past the parrot's pre-roll, and cut the first word from the echo."""
    speech = read_wav(SPEECH_WAV)
    echoes, _ = await converse(speech, lead=lead)
    assert len(echoes) == 1
    first_word = speech.samples[: RATE // 4].tobytes()
    assert first_word in echoes[0], f"the echo ({seconds(echoes[0]):.2f} s) lacks the utterance's first 0.25 s"


def tone_frames(count: int, level: int) -> list[Any]:
    return audio_frames(np.full(count * BLOCK, level, dtype=np.int16))


async def parrot_replies(frames: list[Frame]) -> tuple[list[bytes], int]:
    """Standing echoes and replies taken back, for VAD frames sent straight to a `Parrot`."""
    recorder = PushOrder()
    await run_test(Pipeline([Parrot(), recorder]), frames_to_send=frames)
    return played_replies(recorder.frames)


def pause_then_more(first: list[Any], gap: list[Any], second: list[Any]) -> list[Frame]:
    """An utterance, a pause after the VAD's stop, then voice again (onset, confirmed, stopped)."""
    return [
        VADUserStartedSpeakingFrame(), *first, VADUserStoppedSpeakingFrame(), *gap,
        UserSpeechOnsetFrame(), *second, VADUserStartedSpeakingFrame(), VADUserStoppedSpeakingFrame(),
    ]  # fmt: skip


async def test_an_onset_within_resume_secs_retracts_and_the_utterance_goes_on() -> None:
    first, gap, second = tone_frames(5, 1), tone_frames(3, 2), tone_frames(5, 3)  # 3 blocks: 60 ms < 0.3 s
    echoes, taken_back = await parrot_replies(pause_then_more(first, gap, second))
    assert taken_back == 1
    assert echoes == [b"".join(f.audio for f in [*first, *gap, *second])]


async def test_an_onset_after_resume_secs_is_a_new_utterance() -> None:
    first, gap, second = tone_frames(5, 1), tone_frames(20, 2), tone_frames(5, 3)  # 20 blocks: 0.4 s > 0.3 s
    echoes, taken_back = await parrot_replies(pause_then_more(first, gap, second))
    assert taken_back == 0
    assert echoes[0] == b"".join(f.audio for f in first)
    assert len(echoes) == 2


async def test_an_onset_that_dies_out_gets_the_whole_utterance_answered_again() -> None:
    first, blip = tone_frames(5, 1), tone_frames(2, 2)
    echoes, taken_back = await parrot_replies(
        [
            VADUserStartedSpeakingFrame(), *first, VADUserStoppedSpeakingFrame(),
            UserSpeechOnsetFrame(), *blip, UserSpeechOnsetLostFrame(),
        ]
    )  # fmt: skip
    assert taken_back == 1
    assert echoes == [b"".join(f.audio for f in [*first, *blip])]


async def test_onset_frames_come_before_the_vads_start_of_speech_and_stop_secs_is_applied() -> None:
    analyzer = SileroVADAnalyzer()
    speech = load(PAUSED_SENTENCE)
    recorder = PushOrder()
    await run_test(
        Pipeline([OnsetVADProcessor(vad_analyzer=analyzer, stop_secs=0.15), recorder]),
        frames_to_send=audio_frames(np.concatenate([np.zeros(RATE // 2, dtype=np.int16), speech.samples])),
    )
    assert analyzer.params.stop_secs == 0.15
    kinds = [type(f) for f in recorder.frames if isinstance(f, UserSpeechOnsetFrame | VADUserStartedSpeakingFrame)]
    assert kinds[:2] == [UserSpeechOnsetFrame, VADUserStartedSpeakingFrame]


async def test_a_burst_too_short_to_be_speech_is_an_onset_that_is_lost() -> None:
    speech = load(PAUSED_SENTENCE).samples
    burst = speech[RATE // 2 : RATE // 2 + RATE // 5]  # 0.2 s of voice: its onset is heard for less than start_secs
    silence = np.zeros(RATE // 2, dtype=np.int16)
    recorder = PushOrder()
    await run_test(
        Pipeline([OnsetVADProcessor(vad_analyzer=SileroVADAnalyzer(), stop_secs=0.15), recorder]),
        frames_to_send=audio_frames(np.concatenate([silence, burst, silence])),
    )
    kinds = [
        type(f)
        for f in recorder.frames
        if isinstance(f, UserSpeechOnsetFrame | UserSpeechOnsetLostFrame | VADUserStartedSpeakingFrame)
    ]
    assert kinds == [UserSpeechOnsetFrame, UserSpeechOnsetLostFrame]
