"""A phone caller's hang-up, told apart from the bot's own end. The bot sees both only as its media
closing and reports its pipeline finishing; the relay sees which side went first: the carrier's
`stop` (Twilio, Telnyx, Plivo and Exotel send it as the call ends) or its socket closing, before the
bot's media socket closed. The session's timeline then says `caller_hung_up` (its `how`: `stop` or
`closed`), which the release judge reads as it reads a WebRTC peer gone
(dispatcher/sessions/release_outcome.py)."""

from __future__ import annotations

from starlette.types import Message

from dispatcher.phone.silence import is_carrier_event

STOP, CLOSED = "stop", "closed"


def is_stop(message: Message) -> bool:
    """A carrier's `stop` event: the call is over at the carrier's end."""
    return is_carrier_event(message, "stop")
