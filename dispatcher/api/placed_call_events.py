"""What a placed call's callbacks do, once their carrier's signature, the URL's MAC of the session and their
first sighting are checked (Twilio's: dispatcher/api/routers/twilio_dial.py; Telnyx's TeXML:
dispatcher/api/routers/telnyx_dial.py). Both carriers speak Twilio's words (`CallStatus`, `AnsweredBy`), so
one implementation records the outcome as the trunk path records it (dispatcher/api/call_outcomes.py), and
does what a machine's answer asks: hang up; or hand the call to a fresh stream whose bot finds `answered_by`
in its body (`message`: at the beep; `flag`: at once), the first session ending `voicemail`. A verdict that
leaves the call with its bot (a person, none, a machine whose beep is awaited) is told to that bot
(dispatcher/phone/verdict_to_bot.py), and the timeline's `answered_by` says what it heard (`bot`). A verdict
that would change the call acts only if no transfer took the call first (dispatcher/phone/placed_turns.py);
otherwise it is only noted (`ignored`), and a transfer after it is refused."""

from __future__ import annotations

import logging
from typing import Any

from botchannel.answered_by import ANSWERED_BY, AnsweredBy
from dispatcher.api.call_outcomes import record_outcome
from dispatcher.api.call_place import placed_base
from dispatcher.api.phone_start import phone_start
from dispatcher.api.state import AppState
from dispatcher.errors import ApiError
from dispatcher.phone.dialer import Dialer
from dispatcher.phone.placed_turns import PlacedTurns
from dispatcher.phone.twilio_calls import TwilioRefused, Unanswered
from dispatcher.phone.twilio_dial import NOT_ANSWERED, voicemail_action
from dispatcher.phone.verdict_to_bot import tell_bot
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")


async def status_event(state: AppState, dialer: Dialer, session_id: str, form: dict[str, str],
                       call_sid: str) -> None:
    """The call's progress: answered, or its end without an answer (the session ends with it)."""
    status = form.get("CallStatus", "")
    fields = {"carrier": dialer.carrier, "call_sid": call_sid}
    if status == "in-progress":
        await record_outcome(state, session_id, "answered", **fields)
    elif status in NOT_ANSWERED:
        await record_outcome(state, session_id, NOT_ANSWERED[status], **fields)


async def amd_event(state: AppState, dialer: Dialer, session_id: str, form: dict[str, str], call_sid: str,
                    kept: dict[str, Any], *, updated_as: str | None = None) -> None:
    """Who answered, by the carrier's asynchronous answering-machine detection. `updated_as`: the call as
    the carrier's update names it where that is not its `call_sid` (Telnyx's: `AccountSid/CallSid`)."""
    answered_by = form.get("AnsweredBy", "")
    if answered_by not in ANSWERED_BY:
        raise ApiError(400, "invalid_form", f"AnsweredBy is one of {', '.join(ANSWERED_BY)}")
    carrier = dialer.carrier
    action = voicemail_action(str(kept.get("voicemail")), answered_by)
    heard: dict[str, Any] = {}
    if action is None:  # the call stays with the bot already talking on it: it hears who answered
        await _keep_for_bot(dialer, session_id, answered_by)  # first: a bot attached meanwhile reads it
        heard["bot"] = await tell_bot(state.channels, state.remote, session_id, AnsweredBy(answered_by, carrier))
    elif (ignored := await _not_ours(state.phone.turns, session_id)) is not None:
        heard["ignored"], action = ignored, None
    state.sessions.timeline.note(session_id, "answered_by", answered_by=answered_by, carrier=carrier, **heard)
    fields: dict[str, Any] = {"carrier": carrier, "call_sid": call_sid, "answered_by": answered_by}
    owner = state.phone.owners(str(kept.get("owner")))
    try:
        if action == "hand_to_bot" and owner is not None:
            base = placed_base(state, carrier)
            body = {**kept.get("body", {}), "answered_by": answered_by}
            answer, _ = phone_start(state.phone, carrier, body, base, owner, state.settings.region)
            await dialer.hand_over(updated_as or call_sid, f"{answer['wsUrl']}/{answer['token']}")
            fields["continued_in"] = answer["sessionId"]
        elif action is not None:  # hang_up (or a key removed since: no bot may take the call)
            await dialer.hang_up(updated_as or call_sid)
    except (TwilioRefused, Unanswered) as exc:
        await _give_back(state.phone.turns, session_id)  # the call is as it was: a transfer may take it
        raise ApiError(502, f"{carrier}_refused", f"the call could not be changed at {dialer.title}: {exc}") from None
    if action is not None:
        await record_outcome(state, session_id, "voicemail", **fields)


async def told_on_attach(state: AppState, dialer: Dialer, session_id: str) -> None:
    """The call's bot just attached: a verdict that came before (its `answered_by` event said `no_bot`) is told
    to it now, and the timeline's `answered_by_told` says what it heard. Told twice in a race with the callback
    (both read the kept verdict), the bot runs its handler once (bot/answered_by.py)."""
    try:
        answered_by = await dialer.kept_verdict(session_id)
    except StoreUnavailable:
        log.warning("placed call %s: the store did not say whether a verdict awaits its bot", session_id)
        return
    if answered_by not in ANSWERED_BY:
        return
    heard = await tell_bot(state.channels, state.remote, session_id, AnsweredBy(answered_by, dialer.carrier))
    state.sessions.timeline.note(session_id, "answered_by_told", answered_by=answered_by, carrier=dialer.carrier,
                                 bot=heard)


async def _keep_for_bot(dialer: Dialer, session_id: str, answered_by: str) -> None:
    try:
        await dialer.keep_verdict(session_id, answered_by)
    except (ApiError, StoreUnavailable) as exc:
        log.warning("placed call %s: its verdict was not kept for a bot attached later: %s", session_id, exc)


async def _not_ours(turns: PlacedTurns | None, session_id: str) -> str | None:
    """Why the verdict may not change the call (None: it may): `transferred` when a transfer took the call
    first (it is the person's now), `store_unavailable` when the store cannot say (a person's call is never
    hung up on a guess)."""
    if turns is None:
        return None
    try:
        return None if await turns.take(session_id, "verdict") else "transferred"
    except StoreUnavailable:
        log.warning("placed call %s: the store did not say whether it was transferred: its verdict is only noted",
                    session_id)
        return "store_unavailable"


async def _give_back(turns: PlacedTurns | None, session_id: str) -> None:
    if turns is None:
        return
    try:
        await turns.give_back(session_id, "verdict")
    except StoreUnavailable:
        log.warning("placed call %s: the store did not forget the verdict the carrier refused: its transfer is "
                    "refused", session_id)
