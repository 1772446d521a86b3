"""Who answered a call placed out, told to the bot talking on it: one request on its channel.

    dispatcher → bot   request  call.answered_by {answered_by, carrier}   →   reply {heard: bool}

The carrier's asynchronous answering-machine detection (Twilio's `AsyncAmd`, Telnyx's TeXML AMD) gives
its verdict seconds after the callee picked up, while the bot already speaks. A verdict that leaves the
call with its bot (a person, or no verdict) is sent to it; `heard` says whether the bot had a handler for
it (bot/answered_by.py). A machine hung up on, or handed to a fresh bot for its message, never reaches
the first bot: its stream ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

METHOD_ANSWERED_BY = "call.answered_by"
# The bot answers at once (its handler runs on its own): this bounds the dispatcher's wait, under the
# carrier's own wait for the callback's answer (Twilio's: 15 s).
ANSWERED_BY_SECONDS = 3.0
# Twilio's `AnsweredBy` values (https://www.twilio.com/docs/voice/answering-machine-detection), which
# Telnyx's TeXML callbacks copy.
HUMAN = "human"
MACHINE_START = "machine_start"
MACHINE = (MACHINE_START, "machine_end_beep", "machine_end_silence", "machine_end_other")
ANSWERED_BY = (HUMAN, *MACHINE, "fax", "unknown")
CARRIERS = ("twilio", "telnyx")


class VerdictInvalid(ValueError):
    """A `call.answered_by` request whose params this contract does not name."""


@dataclass(frozen=True)
class AnsweredBy:
    """The carrier's verdict on who answered this bot's call (`answered_by`, one of `ANSWERED_BY`)."""

    answered_by: str
    carrier: str

    @property
    def human(self) -> bool:
        return self.answered_by == HUMAN

    @property
    def machine(self) -> bool:
        return self.answered_by in MACHINE

    def as_params(self) -> dict[str, Any]:
        return {"answered_by": self.answered_by, "carrier": self.carrier}


def parse_verdict(params: Mapping[str, Any]) -> AnsweredBy:
    answered_by, carrier = params.get("answered_by"), params.get("carrier")
    if answered_by not in ANSWERED_BY:
        raise VerdictInvalid(f"answered_by is one of {', '.join(ANSWERED_BY)}")
    if carrier not in CARRIERS:
        raise VerdictInvalid(f"carrier is one of {', '.join(CARRIERS)}")
    return AnsweredBy(str(answered_by), str(carrier))
