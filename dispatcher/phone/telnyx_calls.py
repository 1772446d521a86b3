"""Telnyx's TeXML Calls resource, the REST side of a call Telnyx answered with this dispatcher's TeXML
(https://developers.telnyx.com/api-reference/texml-rest-commands/update-call): Twilio's Calls resource
in shape, so a transfer updates the call with new TeXML and reads it back as it does Twilio's
(dispatcher/phone/twilio_calls.py `CallsResource`, dispatcher/phone/transfers.py).

    POST {TELNYX_API_URL}/v2/texml/Accounts/{AccountSid}/Calls/{CallSid}   form: Texml=<Response>…
    GET  {TELNYX_API_URL}/v2/texml/Accounts/{AccountSid}/Calls/{CallSid}
    POST {TELNYX_API_URL}/v2/texml/Accounts/{AccountSid}/Calls             JSON: a call placed out

A call placed out (dispatcher/phone/telnyx_dial.py) is created with JSON; its answer is `{from, to,
status}` alone: the call's SID comes with its signed callbacks. A TeXML call is steered by TeXML, not
by Call Control's `actions/transfer`: the new TeXML's `<Dial>` hands it over (docs/phone.md).

Bearer auth with an API key under a name of the dispatcher's alone (TELNYX_TRANSFER_API_KEY, never
given to a bot: dispatcher/machines/bot_variables.py), not TELNYX_API_KEY, which Pipecat's serializer
reads in a bot. Only Telnyx's codes 10005 (no such resource) and 90018 (the call has already ended)
say the call is over, never a bare 404. The call's ids come from the TeXML webhook Telnyx signed
(Ed25519), carried in the stream's one-time token, and are checked here before they name a URL path.
"""

from __future__ import annotations

from typing import Any

from dispatcher.outbound.retry import Backoff
from dispatcher.phone.telnyx_ids import ACCOUNT_SID as ACCOUNT_SID  # its importers name them here
from dispatcher.phone.telnyx_ids import CALL_ID as CALL_ID
from dispatcher.phone.telnyx_ids import TELNYX_API_URL as TELNYX_API_URL
from dispatcher.phone.twilio_calls import TIMEOUT_SECONDS, UPDATE_BACKOFF, CallsResource

DIAL_TIME_LIMITS = (60, 14400)  # seconds, TeXML's `<Dial timeLimit>` (its texml-verbs/dial page)


def call_id(account_sid: str, call_sid: str) -> str | None:
    """The account's and the call's SIDs as one id (`AccountSid/CallSid`), None unless both are well formed."""
    joined = f"{account_sid}/{call_sid}"
    return joined if CALL_ID.fullmatch(joined) else None


def is_callback(fields: dict[str, str]) -> bool:
    """Whether a signed body is one of a call's callbacks (status, recording, …): Telnyx names its source in
    `CallbackSource`, which a request for the call's TeXML (its first, a `<Redirect>`'s) never has."""
    return "CallbackSource" in fields


def is_first_voice_request(fields: dict[str, str]) -> bool:
    """Whether a signed body has the shape of Telnyx's first request for a call's TeXML (the call
    ringing), not of a status callback (`CallbackSource`), a recording's (`Recording…`) or a verb's
    action callback (no `CallStatus`, or the call in progress): all are signed with the same key."""
    if is_callback(fields) or any(name.startswith("Recording") for name in fields):
        return False
    return fields.get("CallStatus") == "ringing"


class TelnyxCalls(CallsResource):
    carrier = "Telnyx"
    document_field = "Texml"
    gone_codes = frozenset({10005, 90018})  # resource not found; call has already ended

    def __init__(self, api_key: str, base_url: str = TELNYX_API_URL, *, timeout: float = TIMEOUT_SECONDS,
                 backoff: Backoff = UPDATE_BACKOFF) -> None:
        super().__init__(base_url, timeout=timeout, backoff=backoff)
        self._api_key = api_key

    async def create(self, account_sid: str, document: dict[str, Any]) -> dict[str, Any]:
        """A new outgoing call: Telnyx's answer (`status` `queued`); `TwilioRefused` (nothing placed),
        `Unanswered` (it may have been placed)."""
        if not ACCOUNT_SID.fullmatch(account_sid):  # it names a URL path
            raise ValueError("not a Telnyx AccountSid")
        return await self._post_json(f"/v2/texml/Accounts/{account_sid}/Calls", document)

    def _path(self, call_sid: str) -> str:
        if not CALL_ID.fullmatch(call_sid):  # it names a URL path: nothing but the two SIDs goes there
            raise ValueError("not a Telnyx AccountSid/CallSid pair")
        account, call = call_sid.split("/", 1)
        return f"/v2/texml/Accounts/{account}/Calls/{call}"

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}

    def dial_time_limit(self, seconds: int) -> int:
        """Within the 60 to 14,400 seconds TeXML's `<Dial timeLimit>` takes."""
        return min(max(seconds, DIAL_TIME_LIMITS[0]), DIAL_TIME_LIMITS[1])

    def _error_of(self, error: dict[str, Any]) -> tuple[int | None, str]:
        """Telnyx's first error: its code (a string of digits) as a number, its title and detail."""
        errors = error.get("errors")
        first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
        code = str(first.get("code") or "")
        message = " ".join(str(first[key]) for key in ("title", "detail") if first.get(key))
        return (int(code) if code.isdigit() else None), message
