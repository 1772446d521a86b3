"""The booking line's conversation: a few intents answered deterministically, where an LLM would be.

It holds one call's state (party size, time, whether a booking was made) and answers each caller
turn with one spoken reply. Words are matched, not parsed: the recogniser (listening.py) hears
only this module's vocabulary, so a turn is a bag of known words, and "for"/"four" or "to"/"two"
are told apart by what follows them ("a table for two" books two).
"""

from __future__ import annotations

from dataclasses import dataclass, field

NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
DAYS = ("today", "tonight", "tomorrow", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

GREETING = "Hello, this is the booking line. You can book a table, ask our opening hours, or cancel a booking."
HOURS = "We are open every day from twelve noon to eleven at night."
NOT_UNDERSTOOD = "Sorry, I did not catch that. You can book a table, ask our opening hours, or cancel a booking."
ASK_PEOPLE = "For how many people?"
ASK_TIME = "At what time?"
GOODBYE = "Thank you for calling. Goodbye."
CANCELLED = "Your booking is cancelled. Is there anything else?"
NOTHING_TO_CANCEL = "There is no booking on this call to cancel. Is there anything else?"
CHANGE = "All right, what would you like to change?"

# The sentences callers say, from which the recogniser's language model is built (listening.py):
# every word a caller can be heard saying is in them.
CALLER_PHRASES = (
    "hello",
    "hi there",
    "i would like to book a table",
    "i want to make a booking",
    "can i book a table for two people tomorrow at seven",
    "a table for four tonight at eight",
    "book a table for three friday at nine",
    "for two people please",
    "for six",
    "at seven",
    "at half past eight",
    "yes please",
    "yes that is right",
    "no thank you",
    "no",
    "what are your opening hours",
    "when are you open",
    "i want to cancel my booking",
    "cancel it please",
    "that is all thank you goodbye",
    "goodbye",
    "okay goodbye",
    "thank you goodbye",
    "bye",
    *(f"{word} people" for word in NUMBERS),
    *(f"for {word} people please" for word in NUMBERS),
    *(f"for {word}" for word in NUMBERS),
    *(f"at {word}" for word in NUMBERS),
    *DAYS,
    *(f"{day} at {word}" for day in DAYS for word in ("six", "seven", "eight", "nine")),
)


@dataclass(frozen=True)
class Reply:
    text: str
    ends_call: bool = False


@dataclass
class BookingFlow:
    """One call's booking conversation."""

    people: int | None = None
    time: str | None = None
    day: str | None = None
    booked: bool = False
    confirming: bool = False
    heard: list[str] = field(default_factory=list)

    def greeting(self) -> Reply:
        return Reply(GREETING)

    def reply(self, utterance: str) -> Reply:
        words = [_keyed(word) for word in utterance.lower().replace("'", " ").split()]
        self.heard.append(" ".join(words))
        if not words:
            return Reply(NOT_UNDERSTOOD)
        if self.confirming and ({"yes", "right", "correct"} & set(words)):
            return self._book()
        if self.confirming and "no" in words:
            self.confirming = False
            self.people = self.time = None
            return Reply(CHANGE)
        if {"goodbye", "bye"} & set(words) or words[-2:] == ["thank", "you"] and len(words) <= 4:
            return Reply(GOODBYE, ends_call=True)
        if "cancel" in words:
            return self._cancel()
        if {"hours", "open"} & set(words):
            return Reply(HOURS)
        self._take_details(words)
        if {"book", "booking", "table", "reservation"} & set(words) or self.people or self.time:
            return self._next_question()
        if {"hello", "hi"} & set(words):
            return Reply(GREETING)
        return Reply(NOT_UNDERSTOOD)

    def _take_details(self, words: list[str]) -> None:
        for i, word in enumerate(words):
            previous = words[i - 1] if i else ""
            following = words[i + 1] if i + 1 < len(words) else ""
            if word in DAYS:
                self.day = word
            if word not in NUMBERS:
                continue
            if previous == "at" or following in ("pm", "o", "oclock"):
                self.time = word
            elif following == "people" or previous in ("for", "of") or self.people is None and self.time is not None:
                self.people = NUMBERS[word]
            elif self.people is None:
                self.people = NUMBERS[word]
            else:
                self.time = word

    def _next_question(self) -> Reply:
        if self.people is None:
            return Reply(ASK_PEOPLE)
        if self.time is None:
            return Reply(ASK_TIME)
        self.confirming = True
        return Reply(f"A table for {_spoken(self.people)} {self._when()}. Shall I book it?")

    def _book(self) -> Reply:
        self.confirming = False
        self.booked = True
        return Reply(f"Booked: a table for {_spoken(self.people)} {self._when()}. Is there anything else?")

    def _cancel(self) -> Reply:
        if not self.booked:
            return Reply(NOTHING_TO_CANCEL)
        self.booked = False
        self.people = self.time = self.day = None
        return Reply(CANCELLED)

    def _when(self) -> str:
        day = self.day or "today"
        return f"{day} at {self.time}" if day != "tonight" else f"tonight at {self.time}"


def _keyed(word: str) -> str:
    """Keys pressed on a phone (`4`, `4#`: the keypad's turn) as the number said: "for how many
    people?" is answered by pressing 4 as by saying four."""
    digits = word.rstrip("#")
    return _spoken(int(digits)) if digits.isdigit() and 0 < int(digits) <= len(NUMBERS) else word


def _spoken(number: int | None) -> str:
    return next((word for word, value in NUMBERS.items() if value == number), str(number))
