"""The dispatcher's side of a call placed through Twilio (dispatcher/phone/twilio_dial.py says how; the
shared part: dispatcher/phone/dialer.py). Twilio's refusals of the numbers become the API's 422s here,
each naming what to change; a refused credential names the Twilio region it must be made in."""

from __future__ import annotations

from typing import Any

from dispatcher.errors import ApiError
from dispatcher.phone.dialer import Dialer
from dispatcher.phone.twilio_calls import TwilioCalls, TwilioRefused
from dispatcher.phone.twilio_dial import create_form, stream_twiml

# Twilio's error codes a create is refused with for its numbers (https://www.twilio.com/docs/api/errors).
BAD_TO = (21211, 21217)
BAD_FROM = (21210, 21212, 21213)


class TwilioDialer(Dialer):
    _resource: TwilioCalls

    def stream_document(self, stream_url: str) -> str:
        return stream_twiml(stream_url)

    def create_for(self, *, to: str, caller_id: str, stream_url: str, status_url: str, amd_url: str,
                   voicemail: str) -> list[tuple[str, str]]:
        return create_form(to=to, caller_id=caller_id, stream_url=stream_url, status_url=status_url,
                           amd_url=amd_url, ring_seconds=self.settings.ring_seconds, voicemail=voicemail)

    async def _create(self, create: Any) -> dict[str, Any]:
        return await self._resource.create(create)

    def _refusal(self, exc: TwilioRefused) -> ApiError:
        detail = f"Twilio refused the call: {exc.message}" + (f" (error {exc.code})" if exc.code else "")
        if exc.code in BAD_TO:
            return ApiError(422, "invalid_to", detail + "; give a number Twilio can call, E.164")
        if exc.code in BAD_FROM:
            return ApiError(422, "invalid_from", detail + "; `from` must be one of the account's numbers or a "
                            "verified caller ID")
        if exc.status in (401, 403):  # a credential of another region reads as any wrong one: say which it must be
            return ApiError(502, "twilio_refused", detail + f"; check {self.credentials_named}: they must be made in "
                            f"Twilio's {self._resource.region} region, as each region has its own (TWILIO_REGION "
                            "names the account's; docs/phone.md, \"A Twilio account outside the US\")")
        return super()._refusal(exc)
