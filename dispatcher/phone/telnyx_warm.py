"""A warm transfer of a Telnyx call: the steps of a Twilio call's (twilio_warm.py), through Telnyx's TeXML Calls
API, because the caller's call is a TeXML call (telnyx_calls.py) and TeXML is TwiML in Telnyx's words
(https://developers.telnyx.com/docs/voice/programmable-voice/texml-twiml-compatibility).

1. The consult call is created with JSON (https://developers.telnyx.com/api-reference/texml-rest-commands/
   initiate-an-outbound-call): `ApplicationSid` (TELNYX_APPLICATION_SID, whose outbound voice profile places
   it), `To` the person, `From` the number the caller reached, `Timeout`, `TimeLimit`, `StatusCallback` with
   its events, and `Texml`: the briefing said by Telnyx's `<Say>` (Telnyx's text-to-speech voice, not the
   bot's), then a `<Redirect>` to the dispatcher. Telnyx's answer names no call: the call's `CallSid` comes
   with its Ed25519-signed status callbacks, which the waiting replica reads from the store.
2. The `<Redirect>` is answered with `<Dial><Conference>`
   (https://developers.telnyx.com/docs/voice/programmable-voice/texml-verbs/conference), and the caller's
   call is updated to the same room (https://developers.telnyx.com/api-reference/texml-rest-commands/update-call).
3. Ending the consult call is that update with `Status=completed`, the one value Telnyx documents.

Why not Call Control (`POST /v2/calls`, `actions/speak`, `actions/bridge`)? The caller's call is a TeXML call,
steered by TeXML: a Call Control bridge of it would leave the TeXML document it runs (its `<Stream>`) with no
word on what follows, and every step, callback and record here would need a second implementation.
"""

from __future__ import annotations

from typing import Any

from dispatcher.phone.telnyx_calls import CALL_ID, TelnyxCalls
from dispatcher.phone.twilio_warm import AskBot, TwilioWarm, WarmCallbacks
from dispatcher.store.coordination import FirstClaims


class TelnyxWarm(TwilioWarm):
    carrier = "Telnyx"
    call_id = CALL_ID  # `AccountSid/CallSid`, as TeXML's REST path names a call
    ringing_ends = ("completed",)  # https://developers.telnyx.com/api-reference/texml-rest-commands/update-call

    def __init__(self, rest: TelnyxCalls, records: FirstClaims, callbacks: WarmCallbacks, ask_bot: AskBot,
                 *, application_sid: str, account_sid: str | None = None, **kwargs: Any) -> None:
        super().__init__(rest, records, callbacks, ask_bot, **kwargs)
        self._telnyx, self._application = rest, application_sid
        self.account = account_sid  # TELNYX_ACCOUNT_SID: its callbacks name no other account (None: unset)

    async def _create(self, caller_sid: str, form: list[tuple[str, str]], transfer: str) -> str | None:
        """The consult call, placed in the caller's call's account; None: Telnyx's answer names no call."""
        fields = dict(form)
        document: dict[str, Any] = {
            "ApplicationSid": self._application, "To": fields["To"], "From": fields["From"],
            "Timeout": int(fields["Timeout"]), "TimeLimit": self._telnyx.dial_time_limit(int(fields["TimeLimit"])),
            "Texml": fields["Twiml"], "StatusCallback": fields["StatusCallback"],
            "StatusCallbackMethod": fields["StatusCallbackMethod"],
            "StatusCallbackEvent": " ".join(value for key, value in form if key == "StatusCallbackEvent")}
        await self._telnyx.create(caller_sid.split("/", 1)[0], document)
        return None

