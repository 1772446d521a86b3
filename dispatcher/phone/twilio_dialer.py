"""The dispatcher's side of a call placed through Twilio (dispatcher/phone/twilio_dial.py says how): its
pace, its create, what its callbacks read back, and the two changes an answering machine may make (hang
up; hand the call to a fresh stream whose bot is told who answered). Twilio's refusals become the API's
own errors here, each naming what to change."""

from __future__ import annotations

from typing import Any

from dispatcher.errors import ApiError
from dispatcher.phone.call_pace import paced
from dispatcher.phone.twilio_calls import TwilioCalls, TwilioRefused, Unanswered
from dispatcher.phone.twilio_dial import KEPT_SECONDS, TwilioDialSettings, stream_twiml
from dispatcher.store.coordination import CreateLimits, SessionValues
from dispatcher.store.secrets_vault import VaultFull

KEPT_PREFIX = "twilio-call:"
# Twilio's error codes a create is refused with for its numbers (https://www.twilio.com/docs/api/errors).
BAD_TO = (21211, 21217)
BAD_FROM = (21210, 21212, 21213)


class TwilioDialer:
    def __init__(self, settings: TwilioDialSettings, twilio: TwilioCalls, account_sid: str, limits: CreateLimits,
                 kept: SessionValues) -> None:
        self.settings = settings
        self._twilio = twilio
        self._account = account_sid
        self._limits = limits
        self._kept = kept

    async def pace(self) -> float:
        """Waits for the account's next turn (its calls a second, across every replica); 429 past the bound."""
        return await paced(self._limits, f"twilio:{self._account}", self.settings.calls_per_second,
                           self.settings.max_wait_seconds, code="twilio_paced",
                           what=f"the Twilio account {self._account}", setting="TWILIO_CALL_MAX_WAIT_SECONDS")

    async def place(self, session_id: str, form: list[tuple[str, str]], kept: dict[str, Any]) -> str:
        """Creates the call, its values kept first (a callback may come before the create's answer); the
        call's SID. `ApiError` when it was not placed, or (504) when Twilio's answer never came."""
        try:
            await self._kept.put(KEPT_PREFIX + session_id, kept, KEPT_SECONDS)
        except VaultFull:
            raise ApiError(503, "calls_full", "too many calls are waiting on Twilio right now; try again",
                           retry_after=5) from None
        try:
            answer = await self._twilio.create(form)
        except TwilioRefused as exc:
            raise _refusal(exc) from None
        except Unanswered:
            raise ApiError(504, "twilio_unanswered", "Twilio did not answer the create: the call may have been "
                           "placed; follow its session before placing it again") from None
        return str(answer.get("sid", ""))

    async def kept_call(self, session_id: str) -> dict[str, Any] | None:
        return await self._kept.get(KEPT_PREFIX + session_id)

    async def hang_up(self, call_sid: str) -> None:
        """Ends a live call (`Status=completed`); a call already over is left as it is."""
        try:
            await self._twilio.update(call_sid, status="completed")
        except TwilioRefused as exc:
            if exc.code != 21220:  # not in progress: it ended already
                raise

    async def hand_over(self, call_sid: str, stream_url: str) -> None:
        """The live call's media moved to a new stream (Twilio ends the first one)."""
        await self._twilio.update(call_sid, stream_twiml(stream_url))


def _refusal(exc: TwilioRefused) -> ApiError:
    detail = f"Twilio refused the call: {exc.message}" + (f" (error {exc.code})" if exc.code else "")
    if exc.code in BAD_TO:
        return ApiError(422, "invalid_to", detail + "; give a number Twilio can call, E.164")
    if exc.code in BAD_FROM:
        return ApiError(422, "invalid_from", detail + "; `from` must be one of the account's numbers or a "
                        "verified caller ID")
    if exc.status == 429:
        return ApiError(429, "twilio_throttled", detail + "; try again after Retry-After",
                        retry_after=max(1.0, exc.retry_after or 1.0))
    if exc.status in (401, 403):
        return ApiError(502, "twilio_refused", detail + "; check TWILIO_ACCOUNT_SID and its credentials")
    return ApiError(502, "twilio_refused", detail)
