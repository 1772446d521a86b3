"""The call's turns from the frames the tap sees (bot/recording/turns.py)."""

from __future__ import annotations

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    TranscriptionFrame,
    TTSTextFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

from bot.recording.turns import TurnLog

DOWN, UP = FrameDirection.DOWNSTREAM, FrameDirection.UPSTREAM


def test_a_question_and_an_interrupted_answer_are_two_lines_with_their_timings() -> None:
    output, other = BaseOutputTransport(TransportParams()), FrameProcessor()
    log = TurnLog()
    log.heard(UserStartedSpeakingFrame(), other, DOWN, 1.0)
    log.heard(UserStoppedSpeakingFrame(), other, DOWN, 2.5)
    log.heard(TranscriptionFrame("what time is it", "caller", "2026-11-26T00:00:00Z"), other, DOWN, 2.7)
    log.heard(BotStartedSpeakingFrame(), output, UP, 3.3)  # the copy sent upstream is not the start
    log.heard(BotStartedSpeakingFrame(), output, DOWN, 3.3)
    for word in ("It", "is", "noon"):
        log.heard(TTSTextFrame(word, text_type="word"), other, DOWN, 3.4)
    log.heard(InterruptionFrame(), other, DOWN, 3.9)
    log.heard(BotStoppedSpeakingFrame(), output, DOWN, 4.0)
    assert log.lines == [
        {"who": "caller", "text": "what time is it", "start": 1.0, "end": 2.7},
        {"who": "bot", "start": 3.3, "interrupted": True, "latency": 0.8, "text": "It is noon", "end": 4.0},
    ]


def test_a_bot_speaking_when_the_call_ends_has_its_turn_closed_there() -> None:
    output = BaseOutputTransport(TransportParams())
    log = TurnLog()
    log.heard(BotStartedSpeakingFrame(), output, DOWN, 0.5)  # a greeting: no caller speech before it
    log.close(2.0)
    assert log.lines == [{"who": "bot", "start": 0.5, "interrupted": False, "text": "", "end": 2.0}]


def test_the_latency_runs_from_when_the_caller_fell_silent_not_from_when_the_turn_was_judged_over() -> None:
    output, other = BaseOutputTransport(TransportParams()), FrameProcessor()
    log = TurnLog()
    log.heard(UserStartedSpeakingFrame(), other, DOWN, 1.0)
    log.heard(VADUserStoppedSpeakingFrame(stop_secs=0.2), other, DOWN, 1.6)  # a pause, then more words
    log.heard(VADUserStartedSpeakingFrame(), other, DOWN, 1.8)
    log.heard(VADUserStoppedSpeakingFrame(stop_secs=0.2), other, DOWN, 2.7)  # silent since 2.5
    log.heard(UserStoppedSpeakingFrame(), other, DOWN, 3.1)  # the turn analyser's verdict
    log.heard(BotStartedSpeakingFrame(), output, DOWN, 3.2)
    log.heard(BotStoppedSpeakingFrame(), output, DOWN, 4.0)
    assert log.lines[-1]["latency"] == 0.7  # 2.5 → 3.2, the caller's wait, not the 0.1 s after the verdict


def test_words_reported_before_their_audio_plays_are_the_next_turns_and_a_barge_in_drops_them() -> None:
    """A carrier's stream is written ahead of real time: the TTS reports a sentence's words before the
    output transport starts playing it, and that first sentence is still the turn's."""
    output, other = BaseOutputTransport(TransportParams()), FrameProcessor()
    log = TurnLog()
    log.heard(TTSTextFrame("For how many people?", text_type="sentence"), other, DOWN, 0.9)
    log.heard(BotStartedSpeakingFrame(), output, DOWN, 1.0)
    log.heard(TTSTextFrame("Say a number.", text_type="sentence"), other, DOWN, 1.5)
    log.heard(BotStoppedSpeakingFrame(), output, DOWN, 2.0)
    log.heard(TTSTextFrame("Never played.", text_type="sentence"), other, DOWN, 2.5)
    log.heard(InterruptionFrame(), other, DOWN, 2.6)  # cut off before a frame of it played
    log.heard(BotStartedSpeakingFrame(), output, DOWN, 3.0)
    log.heard(BotStoppedSpeakingFrame(), output, DOWN, 3.5)
    assert [line["text"] for line in log.lines] == ["For how many people? Say a number.", ""]
