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
