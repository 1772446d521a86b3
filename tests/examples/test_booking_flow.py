"""The booking line's conversation, turn by turn, on the words a recogniser hands it."""

from __future__ import annotations

import math
import re

import pytest
from booking_flow import ASK_PEOPLE, ASK_TIME, CALLER_PHRASES, GOODBYE, HOURS, NOT_UNDERSTOOD, BookingFlow
from language_model import arpa


def test_a_whole_request_is_read_back_for_confirmation() -> None:
    reply = BookingFlow().reply("i would like to book a table for two people tomorrow at seven")
    assert reply.text == "A table for two tomorrow at seven. Shall I book it?"
    assert not reply.ends_call


def test_missing_details_are_asked_for_one_at_a_time() -> None:
    flow = BookingFlow()
    assert flow.reply("i want to make a booking").text == ASK_PEOPLE
    assert flow.reply("for six").text == ASK_TIME
    assert flow.reply("at eight").text == "A table for six today at eight. Shall I book it?"
    assert flow.reply("yes please").text.startswith("Booked: a table for six today at eight")
    assert flow.booked


def test_keys_pressed_on_a_phone_answer_as_the_number_said() -> None:
    flow = BookingFlow()
    assert flow.reply("i want to make a booking").text == ASK_PEOPLE
    assert flow.reply("4#").text == ASK_TIME  # the keypad's turn: the keys, then `#`
    assert flow.reply("at eight").text == "A table for four today at eight. Shall I book it?"
    assert BookingFlow().reply("99#").text == NOT_UNDERSTOOD  # no party that size: not understood


@pytest.mark.parametrize(
    ("heard", "people", "time"),
    [
        ("a table for four tonight at eight", 4, "eight"),
        ("book a table four two people seven", 2, "seven"),  # "for" heard as "four" before the real number
        ("table for three on friday at nine", 3, "nine"),
    ],
)
def test_numbers_are_told_apart_by_the_words_around_them(heard: str, people: int, time: str) -> None:
    flow = BookingFlow()
    flow.reply(heard)
    assert (flow.people, flow.time) == (people, time)


def test_no_at_the_confirmation_starts_over() -> None:
    flow = BookingFlow()
    flow.reply("book a table for two at seven")
    assert flow.reply("no").text.startswith("All right")
    assert (flow.people, flow.time, flow.booked) == (None, None, False)


def test_a_booking_is_cancelled_only_once_made() -> None:
    flow = BookingFlow()
    assert flow.reply("cancel my booking").text.startswith("There is no booking")
    flow.reply("book a table for two at seven")
    flow.reply("yes")
    assert flow.reply("cancel it please").text.startswith("Your booking is cancelled")
    assert not flow.booked


def test_hours_goodbye_and_what_it_cannot_understand() -> None:
    flow = BookingFlow()
    assert flow.reply("what are your opening hours").text == HOURS
    assert flow.reply("purple monkeys").text == NOT_UNDERSTOOD
    goodbye = flow.reply("that is all thank you goodbye")
    assert (goodbye.text, goodbye.ends_call) == (GOODBYE, True)


def test_the_language_model_is_a_proper_distribution_for_every_context() -> None:
    """Each context's listed bigrams plus its back-off share of the unseen words sum to 1."""
    text = arpa(CALLER_PHRASES)
    unigrams: dict[str, tuple[float, float]] = {}
    bigrams: dict[str, dict[str, float]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("\\"):
            section = line
            continue
        fields = line.split()
        if section == "\\1-grams:" and fields:
            unigrams[fields[1]] = (10 ** float(fields[0]), 10 ** float(fields[2]) if len(fields) > 2 else 1.0)
        elif section == "\\2-grams:" and fields:
            bigrams.setdefault(fields[1], {})[fields[2]] = 10 ** float(fields[0])
    assert math.isclose(sum(p for word, (p, _) in unigrams.items() if word != "<s>"), 1.0, rel_tol=1e-3)
    for context, seen in bigrams.items():
        backoff = unigrams[context][1]
        unseen = sum(p for word, (p, _) in unigrams.items() if word not in seen and word != "<s>")
        assert math.isclose(sum(seen.values()) + backoff * unseen, 1.0, rel_tol=1e-3), context
    assert re.search(r"^ngram 2=\d+$", text, re.MULTILINE)
