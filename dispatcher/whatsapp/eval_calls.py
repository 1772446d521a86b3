"""An eval's WhatsApp call: the dispatcher's WhatsApp path as Meta's `connect` takes it, placed by an eval
with its own API key instead of by Meta (the eval holds no app secret, and Meta places no test calls).

The session starts as a connect's does: on SmallWebRTC, its bot given `body["whatsapp"]` in the same
shape (`call_id`, `from`, `to`, `phone_number_id`) and the caller's offer, its answer filtered as Meta
takes it (answer_sdp.py); the answer goes back to the eval instead of to the Graph API. What keeps it
from being a back door:
- it is only an eval's session, one the key could start anyway: authenticated, owned by that key, admitted and
  budgeted as its starts are, and only on a number WHATSAPP_NUMBERS runs as that same key;
- it never reaches Meta (no Graph call is made for it, nor is it among the calls Meta's webhooks end),
  its call id is the dispatcher's own (`eval-…`, never one of Meta's `wacid.…`), and its timeline
  says `simulated`, so it passes for no real caller's call;
- the offer is audio alone, one audio m-line, as WhatsApp's media servers make it: a bot that leans on a data
  channel fails here as it would on a real call."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.observability.whatsapp_call import ANSWER, CALL
from dispatcher.sessions.ids import Caller
from dispatcher.whatsapp.calls import WhatsAppCalls
from dispatcher.whatsapp.events import MAX_SDP_CHARS
from dispatcher.whatsapp.settings import NumberRoute

# WhatsApp's media servers offer one audio m-line; so must an eval's caller (more is refused, not counted).
MAX_MEDIA_LINES = 1
WHERE = "docs/evals.md, WhatsApp calls"


@dataclass(frozen=True)
class EvalCallAsked:
    offer: str  # the caller's SDP offer
    phone_number_id: str | None  # None: the key's one number
    release: str | None  # None: the number's release, else the key's, else the stable one
    caller: str  # `from`: the simulated caller's wa_id
    business: str  # `to`: the business number called
    body: dict[str, Any]  # the rest of the bot's body (an eval's marker)


def eval_route(calls: WhatsAppCalls, who: Caller, asked: EvalCallAsked) -> NumberRoute:
    """The number the eval's call goes to, once its offer was checked: what a call is refused for before
    anything is counted against its key (ApiError)."""
    _check_offer(asked.offer)
    return own_number(calls, who, asked.phone_number_id)


async def eval_call(calls: WhatsAppCalls, who: Caller, asked: EvalCallAsked, route: NumberRoute) -> dict[str, Any]:
    """The bot's answer to the eval's offer on `route` (eval_route's), with the session it runs in; the session
    is stopped when there is no usable answer (ApiError, as the session's start or signalling refused)."""
    sessions = calls.sessions
    call_id = f"eval-{secrets.token_hex(12)}"
    record: dict[str, Any] = {"call_id": call_id, "from": asked.caller, "to": asked.business,
                              "phone_number_id": route.phone_number_id}
    session = await sessions.start(caller=who, idempotency_key=None, body={**asked.body, "whatsapp": record},
                                   wait=False, transport="webrtc", release=asked.release or route.release,
                                   eval_session=True)
    sessions.timeline.note(session.machine.session_id, CALL, simulated=True, **record)
    sessions.listing.called(session.machine.session_id, {"call_id": call_id, "from": asked.caller})
    try:
        sdp = await calls.bot_answer(session.machine.session_id, asked.offer)
    except BaseException as exc:  # the eval never learns the session's id: it is stopped here, even when cancelled
        with contextlib.suppress(ApiError):
            await asyncio.shield(sessions.stop(session.machine.session_id, caller=who.id))
        if not isinstance(exc, ValueError):
            raise
        raise ApiError(502, "whatsapp_answer_refused", f"{exc}: a real WhatsApp call to this bot would be "
                       "rejected (docs/phone.md, WhatsApp calls)") from None
    sessions.timeline.note(session.machine.session_id, ANSWER, action="accept", simulated=True)
    return {"sdp": sdp, "type": "answer", "session_id": session.machine.session_id, "call_id": call_id,
            "phone_number_id": route.phone_number_id, "release": session.machine.release}


def own_number(calls: WhatsAppCalls, who: Caller, phone_number_id: str | None) -> NumberRoute:
    """The number the eval calls: one WHATSAPP_NUMBERS runs as the eval's own key (ApiError otherwise)."""
    numbers = calls.settings.numbers
    own = sorted(number for number, route in numbers.items() if calls.caller_of(route).id == who.id)
    if phone_number_id is None:
        if len(own) == 1:
            return numbers[own[0]]
        if not own:
            raise ApiError(403, "no_whatsapp_number", "no number of WHATSAPP_NUMBERS runs its calls as this API "
                           f"key: place the eval with the key a number names ({WHERE})")
        raise ApiError(422, "whatsapp_number_needed", f"this key runs the calls of {', '.join(own)}: name the one "
                       f"to call (phone_number_id; a scenario's whatsapp_number) ({WHERE})")
    if phone_number_id not in own:  # another key's number or none at all: the same answer, so none is told apart
        mine = f"this key's: {', '.join(own)}" if own else "this key has none"
        raise ApiError(404, "unknown_whatsapp_number", f"no number {phone_number_id[:40]!r} of WHATSAPP_NUMBERS "
                       f"runs its calls as this API key ({mine}): name one of its numbers, or place the eval with "
                       f"the key WHATSAPP_NUMBERS names for the number ({WHERE})")
    return numbers[phone_number_id]


def _check_offer(sdp: str) -> None:
    # The m-lines as the bot's aiortc reads them: its parser splits with str.splitlines, which breaks at \r,
    # \x0b, \x85, \u2028 and more, so a `^m=` pattern that sees only \n would miss a data channel behind a \r.
    media = [line[2:].split(" ")[0] for line in sdp.splitlines() if line.startswith("m=")]
    if len(sdp) > MAX_SDP_CHARS or media != ["audio"] * MAX_MEDIA_LINES:
        raise ApiError(422, "invalid_offer", f"expected an SDP offer of audio alone ({MAX_MEDIA_LINES} audio "
                       f"m-line, at most {MAX_SDP_CHARS} characters), as WhatsApp's media servers make it: offer no "
                       "data channel, video or second audio stream")
