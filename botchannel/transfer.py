"""A bot asks the dispatcher to hand its own call to a person: one request on its channel.

    bot → dispatcher   request  call.transfer {to, mode, summary?}   →   reply {session_id, to, mode, at, status, …}
    dispatcher → bot   request  call.warm_transfer {event: "brief", summary?}   →   reply {spoken: bool}
    dispatcher → bot   request  call.warm_transfer {event: "failed", reason}    →   reply {spoken: bool}
    dispatcher → bot   request  call.warm_transfer {event: "stop"}              →   reply {stopped: bool}
    dispatcher → bot   request  call.warm_transfer {event: "line", to}          →   reply {line: str}
    dispatcher → bot   request  call.warm_transfer {event: "ringing", to}       →   reply {spoken: bool}

A warm transfer's person answered: the bot now hears them and speaks to them (the caller on hold), and
says its briefing (`summary`, else its own); once it answers, the edge bridges caller and person. The
person did not answer: the caller is back with the bot, which says so. The person hung up during the
briefing: the bot is interrupted (`stop`) before the caller is back with it, then told (`failed`).
On a Twilio call the bot is asked for its briefing's text alone (`line`, said by nobody yet: Twilio's
`<Say>` reads it to the person while the caller goes on talking with the bot; dispatcher/phone/twilio_warm.py),
and told once the person's phone is called (`ringing`): it tells the caller, who stays with it meanwhile.

The dispatcher answers it for the session of the bot that asks (its channel names it) and nothing
else, with the carrier's credentials it holds itself: the bot holds none for this (docs/phone.md).
"""

from __future__ import annotations

METHOD_CALL_TRANSFER = "call.transfer"
# The dispatcher's answer comes once the carrier took the update, or after reading the call back when
# the update went unanswered: its retries and that read fit in this.
TRANSFER_TIMEOUT_SECONDS = 30.0
METHOD_WARM_TRANSFER = "call.warm_transfer"
BRIEF_SECONDS = 20.0  # the bot's briefing, said: past this the edge bridges the two anyway
FAILED_SECONDS = 5.0  # the bot told that the person did not answer (its line said in the background)
STOP_SECONDS = 3.0  # the bot interrupted, the caller on hold meanwhile
LINE_SECONDS = 4.0  # the bot's briefing's text (its own handler has 3 s of it: bot/warm_steps.py)
DEFAULT_BRIEFING = "Hello, I have a caller for you who asked to speak with a person. I'm connecting you now."
# A briefing's longest: about 18 s of a TTS voice's speech (~16 characters a second), within BRIEF_SECONDS.
SUMMARY_CHARS = 300
# A warm transfer's answer: the person's ring (12 s), the briefing and the bridge (the edge's WARM_SECONDS).
WARM_TRANSFER_TIMEOUT_SECONDS = 48.0
# A Daily dial-in call's warm transfer dials the person into the call's own room under a user id of this prefix
# (+ 24 hex; dispatcher/phone/daily_warm.py): that leg leaving is the person's, never the caller's.
DAILY_PERSON_USER = "transfer-"
