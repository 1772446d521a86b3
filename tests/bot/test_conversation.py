"""The conversation's figures from the turn frames (bot/conversation.py), frame by frame: what counts as
an unanswered caller turn, a bot turn cut off, a caller who left within the first turn."""

from __future__ import annotations

from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    InterruptionFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.transports.base_transport import TransportParams

from bot.conversation import UNANSWERED_AFTER_SECONDS, ConversationLog
from botchannel.contract import Report, encode, parse_frame
from botchannel.conversation import conversation_figures

DOWN = FrameDirection.DOWNSTREAM
OUTPUT, OTHER = BaseOutputTransport(TransportParams()), FrameProcessor()


def caller(log: ConversationLog, start: float, end: float) -> None:
    log.heard(UserStartedSpeakingFrame(), OTHER, DOWN, start)
    log.heard(UserStoppedSpeakingFrame(), OTHER, DOWN, end)
    log.heard(TranscriptionFrame("words never kept", "caller", "2026-11-27T00:00:00Z"), OTHER, DOWN, end)


def bot(log: ConversationLog, start: float, end: float, *, cut: bool = False) -> None:
    log.heard(BotStartedSpeakingFrame(), OUTPUT, DOWN, start)
    if cut:
        log.heard(InterruptionFrame(), OTHER, DOWN, end)
    log.heard(BotStoppedSpeakingFrame(), OUTPUT, DOWN, end)


def test_answers_are_timed_a_turn_spoken_over_is_unanswered_and_a_cut_off_turn_counted() -> None:
    log = ConversationLog()
    bot(log, 0.2, 1.0)  # the greeting: a bot turn that answers nothing
    caller(log, 2.0, 3.0)
    bot(log, 3.8, 5.0)
    caller(log, 6.0, 7.0)  # never answered: the caller speaks again
    caller(log, 9.0, 10.0)
    bot(log, 11.5, 12.0, cut=True)
    figures = log.figures(13.0, "peer_disconnected")
    assert figures == {"caller_turns": 3, "unanswered": 1, "bot_turns": 3, "cut_off": 1, "latencies": [0.8, 1.5],
                       "left_in_first_turn": False}
    assert conversation_figures(figures) == figures  # of the shape the channel carries
    assert log.lines == []  # no words kept


def test_a_last_turn_unanswered_counts_only_when_the_call_went_on_long_enough_after_it() -> None:
    for ended_after, unanswered in ((1.0, 0), (UNANSWERED_AFTER_SECONDS, 1)):
        log = ConversationLog()
        caller(log, 1.0, 2.0)
        assert log.figures(2.0 + ended_after, "max_duration")["unanswered"] == unanswered


def test_a_caller_who_hangs_up_before_an_answer_plays_to_its_end_left_within_the_first_turn() -> None:
    log = ConversationLog()
    bot(log, 0.2, 1.0)
    caller(log, 2.0, 3.0)
    bot(log, 3.5, 4.0, cut=True)  # the answer, cut off
    assert log.figures(4.5, "peer_disconnected")["left_in_first_turn"] is True
    answered = ConversationLog()
    caller(answered, 2.0, 3.0)
    bot(answered, 3.5, 4.0)
    assert answered.figures(4.5, "peer_disconnected")["left_in_first_turn"] is False
    unheard = ConversationLog()  # the bot ended it (its idle timeout), not the caller
    assert unheard.figures(30.0, "idle_timeout")["left_in_first_turn"] is False
    hung_up_on = ConversationLog()  # the bot's own code closed it: no caller who left
    caller(hung_up_on, 2.0, 3.0)
    assert hung_up_on.figures(4.0, "bot_closed")["left_in_first_turn"] is False


def test_the_figures_travel_with_ended_and_a_malformed_set_is_dropped_not_the_report() -> None:
    figures = {"caller_turns": 1, "unanswered": 0, "bot_turns": 2, "cut_off": 0, "latencies": [0.7],
               "left_in_first_turn": False}
    sent = Report("ended", "s-1", 1.0, reason="peer_disconnected", exit_code=0, conversation=figures)
    assert parse_frame(encode(sent)) == sent
    assert "conversation" not in encode(Report("ended", "s-1", 1.0))  # none observed: not sent at all
    bad = encode(sent).replace('"latencies":[0.7]', '"latencies":"slow"')
    assert parse_frame(bad) == Report("ended", "s-1", 1.0, reason="peer_disconnected", exit_code=0)
