"""A bot asks the dispatcher to hand its own call to a person: one request on its channel.

    bot → dispatcher   request  call.transfer {to, mode}   →   reply {session_id, to, mode, at, status, …}

The dispatcher answers it for the session of the bot that asks (its channel names it) and nothing
else, with the carrier's credentials it holds itself: the bot holds none for this (docs/phone.md).
"""

from __future__ import annotations

METHOD_CALL_TRANSFER = "call.transfer"
# The dispatcher's answer comes once the carrier took the update, or after reading the call back when
# the update went unanswered: its retries and that read fit in this.
TRANSFER_TIMEOUT_SECONDS = 30.0
