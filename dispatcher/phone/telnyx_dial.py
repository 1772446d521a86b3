"""Calls placed through Telnyx's TeXML Calls API (`POST /calls` with `carrier: telnyx`; docs/phone.md#calling-out).

Why TeXML's create (`POST /v2/texml/Accounts/{AccountSid}/Calls`), not Call Control's `POST /v2/calls`: a
TeXML call is Twilio's call in Telnyx's words, so it keeps every part the dispatcher already has. Its
`Texml` carries `<Connect><Stream>` with the session's one-time token, as Twilio's `Twiml` does (the token
goes to Telnyx alone, in the create's body, never through a URL Telnyx fetches); its progress and
answering-machine verdict come back to this dispatcher's own URL (PHONE_PUBLIC_URL, or this region's in
REGIONS) as Twilio-shaped, Ed25519-signed form callbacks (`CallStatus`, `AnsweredBy` with Twilio's values),
so one implementation records them (dispatcher/api/placed_call_events.py); and the live call is the TeXML
call a transfer or a hang-up already updates (dispatcher/phone/telnyx_calls.py). A Call Control call would
need its own stream start, its own JSON events and its own hang-up and transfer commands.

The create (https://developers.telnyx.com/api-reference/texml-rest-commands/initiate-an-outbound-call) is
JSON: `ApplicationSid` (the team's TeXML application, whose outbound voice profile places the call), `To`,
`From`, `Texml`, `Timeout` (5 to 120 s), `StatusCallback` with `StatusCallbackEvent` (several, space
separated), and asynchronous AMD (`MachineDetection`, `AsyncAmd`, `AsyncAmdStatusCallback`). Its answer
names no call: the call's `AccountSid`/`CallSid` come in its signed callbacks, which alone speak for it.
Paced as Twilio's creates are (TELNYX_CALLS_PER_SECOND, dispatcher/phone/call_pace.py).
"""

from __future__ import annotations

from typing import Any
from xml.sax.saxutils import quoteattr

from dispatcher.errors import ApiError
from dispatcher.phone.dialer import Dialer
from dispatcher.phone.telnyx_calls import TelnyxCalls, call_id
from dispatcher.phone.twilio_calls import TwilioRefused
from dispatcher.phone.twilio_dial import STATUS_EVENTS


def stream_texml(stream_url: str) -> str:
    """The call's media to this dispatcher, both ways (the inbound webhook's `<Stream>`)."""
    return f'<Response><Connect><Stream url={quoteattr(stream_url)} bidirectionalMode="rtp"/></Connect></Response>'


def create_document(*, application_sid: str, to: str, caller_id: str, stream_url: str, status_url: str,
                    amd_url: str, ring_seconds: int, voicemail: str) -> dict[str, Any]:
    """The create's JSON. A message left on a machine waits for its greeting's end (`DetectMessageEnd`);
    otherwise the verdict comes as soon as Telnyx knows (`Enable`)."""
    return {
        "ApplicationSid": application_sid, "To": to, "From": caller_id, "Texml": stream_texml(stream_url),
        "Timeout": ring_seconds, "StatusCallback": status_url, "StatusCallbackMethod": "POST",
        "StatusCallbackEvent": " ".join(STATUS_EVENTS),
        "MachineDetection": "DetectMessageEnd" if voicemail == "message" else "Enable", "AsyncAmd": True,
        "AsyncAmdStatusCallback": amd_url, "AsyncAmdStatusCallbackMethod": "POST",
    }


class TelnyxDialer(Dialer):
    carrier = "telnyx"
    title = "Telnyx"
    setting_prefix = "TELNYX"
    credentials_named = "TELNYX_TRANSFER_API_KEY, TELNYX_ACCOUNT_SID and TELNYX_APPLICATION_SID"
    _resource: TelnyxCalls

    def __init__(self, *args: Any, application_sid: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.application_sid = application_sid

    def stream_document(self, stream_url: str) -> str:
        return stream_texml(stream_url)

    def create_for(self, *, to: str, caller_id: str, stream_url: str, status_url: str, amd_url: str,
                   voicemail: str) -> dict[str, Any]:
        return create_document(application_sid=self.application_sid, to=to, caller_id=caller_id,
                               stream_url=stream_url, status_url=status_url, amd_url=amd_url,
                               ring_seconds=self.settings.ring_seconds, voicemail=voicemail)

    async def _create(self, create: Any) -> dict[str, Any]:
        return await self._resource.create(self.account, create)

    def _sid_of(self, answer: dict[str, Any]) -> str | None:
        return None  # documented as {from, to, status}: the call is named by its signed callbacks alone

    def _transfer_id(self, sid: str) -> str | None:
        return call_id(self.account, sid)  # TeXML's REST path names the account and the call

    def _refusal(self, exc: TwilioRefused) -> ApiError:
        """Telnyx's 422 is its refusal of the request's values (the numbers, above all): the caller's to fix."""
        if exc.status == 422:
            detail = f"Telnyx refused the call: {exc.message}" + (f" (error {exc.code})" if exc.code else "")
            return ApiError(422, "telnyx_refused_call", detail + "; `to` must be a number Telnyx can call, `from` "
                            "one of the account's numbers, and TELNYX_APPLICATION_SID its TeXML application")
        return super()._refusal(exc)
