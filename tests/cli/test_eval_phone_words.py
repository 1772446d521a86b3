"""A phone call's words, read from the session's transcript, laid on the caller's turns by time."""

from __future__ import annotations

from voicefleet.evals.phone_words import laid_on_turns


def test_each_bot_line_is_the_answer_to_the_turn_under_way_when_it_began() -> None:
    # The recording's clock starts 3 s before the caller's own (100.0 is when it heard the greeting).
    lines = [
        {"who": "bot", "text": "Hello, this is the booking line.", "start": 5.4, "end": 11.2},
        {"who": "caller", "text": "i want to make a booking", "start": 12.5, "end": 14.1},
        {"who": "bot", "text": "For how many people?", "start": 14.2, "end": 15.1},
        {"who": "caller", "text": "4#", "start": 12.5, "end": 16.3},  # keys: stamped from the turn before
        {"who": "bot", "text": "At what time?", "start": 16.5, "end": 17.4},
        {"who": "bot", "text": "Sorry.", "start": 17.6, "end": 17.9},
    ]
    heard = laid_on_turns(lines, first_audio_at=100.0, began=[106.9, 110.6, 115.0])
    assert heard.greeting == "Hello, this is the booking line."
    assert heard.answers == ["For how many people?", "At what time? Sorry.", ""]
    assert heard.caller == ["i want to make a booking", "4#", ""]


def test_without_a_bot_line_or_any_audio_nothing_is_placed() -> None:
    assert laid_on_turns([], 100.0, [101.0]).answers == [""]
    assert laid_on_turns([{"who": "bot", "text": "hi", "start": 1.0}], None, [101.0]).answers == [""]


def test_a_bot_whose_audio_drifts_behind_its_clock_still_answers_each_turn_in_turn() -> None:
    # A starved bot: its greeting played from 0.9 s to 17.8 s, and each answer's audio lies seconds later
    # on the transcript's clock than the caller heard it (4, 9, then 13 s). The caller's own marks (its
    # speech's end, as the bot heard it: a bot line's start less its latency; its transcribed lines) do
    # not drift. The caller (100.9 s: the greeting's first audio) began its turns at 119, 125 and 131.
    lines = [
        {"who": "bot", "text": "Hello, this is the booking line.", "start": 0.9, "end": 17.8},
        {"who": "caller", "text": "i want to make a booking", "start": 18.3, "end": 21.0},
        {"who": "bot", "text": "For how many people?", "start": 21.6 + 4, "end": 23.0 + 4, "latency": 1.2 + 4},
        {"who": "caller", "text": "six people", "start": 24.4, "end": 26.2},
        {"who": "bot", "text": "At what time?", "start": 27.0 + 9, "end": 28.0 + 9, "latency": 1.4 + 9},
        {"who": "caller", "text": "saturday at eight", "start": 30.5, "end": 32.4},
        {"who": "bot", "text": "A table for six saturday at eight.", "start": 33.0 + 13, "end": 36.0 + 13,
         "latency": 1.0 + 13, "interrupted": False},
    ]
    heard = laid_on_turns(lines, first_audio_at=100.9, began=[117.8, 123.9, 130.0])
    assert heard.greeting == "Hello, this is the booking line."
    assert heard.answers == ["For how many people?", "At what time?", "A table for six saturday at eight."]
    assert heard.caller == ["i want to make a booking", "six people", "saturday at eight"]


def test_a_greeting_in_two_lines_is_the_greeting_however_late_its_second_lies() -> None:
    lines = [
        {"who": "bot", "text": "Hello.", "start": 1.0, "end": 2.0},
        {"who": "bot", "text": "This is the booking line.", "start": 9.0, "end": 11.0},  # laid 6 s late
        {"who": "caller", "text": "i want to make a booking", "start": 6.0, "end": 8.0},
        {"who": "bot", "text": "For how many people?", "start": 14.0, "end": 15.0, "latency": 7.5},
    ]
    heard = laid_on_turns(lines, first_audio_at=101.0, began=[105.0, 110.0])
    assert heard.greeting == "Hello. This is the booking line."
    assert heard.answers == ["For how many people?", ""]


def test_a_bot_with_no_mark_of_its_caller_is_placed_by_its_own_times() -> None:
    lines = [{"who": "bot", "text": "Hello.", "start": 1.0}, {"who": "bot", "text": "Four, then.", "start": 7.0}]
    heard = laid_on_turns(lines, first_audio_at=101.0, began=[105.0])
    assert (heard.greeting, heard.answers) == ("Hello.", ["Four, then."])
