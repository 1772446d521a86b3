"""A carrier's Calls API, seen from the dispatcher's side of a call placed out (Twilio's: twilio_dialer.py;
Telnyx's TeXML: telnyx_dialer.py): its pace, its create, what its callbacks read back, and the two changes
an answering machine may make (hang up; hand the call to a fresh stream whose bot is told who answered).
One implementation; a carrier says how its create is sent, how its refusals read, and its stream's XML."""

from __future__ import annotations

import logging
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.phone.call_pace import pace_turn
from dispatcher.phone.twilio_calls import CallsResource, TwilioRefused, Unanswered
from dispatcher.phone.twilio_dial import KEPT_SECONDS, DialSettings
from dispatcher.regions.pace_homes import PaceTurn, RegionPaces
from dispatcher.store.coordination import CreateLimits, SessionValues
from dispatcher.store.secrets_vault import VaultFull
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

CALL_SID_KEPT = "call_sid"  # a kept call's SID: named by the create's answer (Twilio), or the first signed callback
ANSWERED_BY_KEPT = "answered_by"  # the verdict its bot is told, kept for a bot attached after it came
UNANSWERED = "_unanswered"  # the ending of the code of a create whose answer never came: it may ring yet


class Dialer:
    carrier = "twilio"  # as `POST /calls` names it
    title = "Twilio"  # as people read it
    setting_prefix = "TWILIO"
    credentials_named = "TWILIO_ACCOUNT_SID and its credentials"  # what a 401 from the carrier asks to check

    def __init__(self, settings: DialSettings, resource: CallsResource, account_sid: str,
                 limits: CreateLimits | RegionPaces,
                 kept: SessionValues) -> None:
        self.settings = settings
        self._resource = resource
        self.account = account_sid
        self._limits = limits
        self._kept = kept

    async def pace(self) -> PaceTurn:
        """Waits for the account's next turn (its calls a second, across every replica and region); 429 past
        the bound."""
        return await pace_turn(self._limits, f"{self.carrier}:{self.account}", self.settings.calls_per_second,
                           self.settings.max_wait_seconds, code=f"{self.carrier}_paced",
                           what=f"the {self.title} account {self.account}",
                           setting=f"{self.setting_prefix}_CALL_MAX_WAIT_SECONDS")

    async def place(self, session_id: str, create: Any, kept: dict[str, Any]) -> str | None:
        """Creates the call, its values kept first (a callback may come before the create's answer); the
        call's SID where the answer names one. `ApiError` when it was not placed, or (504) when the
        carrier's answer never came."""
        await self.keep_call(session_id, kept)
        try:
            answer = await self._create(create)
        except TwilioRefused as exc:
            raise self._refusal(exc) from None
        except Unanswered:
            raise ApiError(504, self.carrier + UNANSWERED, f"{self.title} did not answer the create: the call may "
                           f"have been placed; follow its session {session_id} (`GET /sessions/{session_id}`) before "
                           "placing it again, or ask again with the same Idempotency-Key",
                           extra={"session_id": session_id}) from None
        sid = self._sid_of(answer)
        if sid is not None:  # the carrier named the call to this dispatcher: its bot may hand it to a person
            await self._keep_sid(session_id, kept, sid)
        return sid

    async def _keep_sid(self, session_id: str, kept: dict[str, Any], sid: str) -> None:
        """The call's SID kept beside its values. The call is placed by now: a store that cannot keep it leaves
        the call as it is, which its bot then cannot transfer (`call_not_verified`)."""
        try:
            await self.keep_call(session_id, {**kept, CALL_SID_KEPT: sid})
        except (ApiError, StoreUnavailable) as exc:
            log.warning("placed call %s: its %s SID was not kept, so it cannot be transferred: %s", session_id,
                        self.title, exc)

    async def placed_call(self, session_id: str) -> str | None:
        """The call placed for `session_id` as a transfer names it, where the carrier named it to this dispatcher
        (Twilio: the create's answer; Telnyx: the first signed callback); None for a session this dispatcher
        placed no call for, or whose call the carrier did not name yet. `StoreUnavailable` when the store
        cannot say."""
        sid = (await self.kept_call(session_id) or {}).get(CALL_SID_KEPT)
        return self._transfer_id(sid) if isinstance(sid, str) else None

    def _transfer_id(self, sid: str) -> str | None:
        """A kept SID as this carrier's transfer names the call (Twilio's: the SID itself)."""
        return sid

    async def kept_call(self, session_id: str) -> dict[str, Any] | None:
        return await self._kept.get(self._kept_key(session_id))

    async def keep_call(self, session_id: str, kept: dict[str, Any]) -> None:
        """The call's values, kept for the call's life (again, changed, once its SID is known)."""
        try:
            await self._kept.put(self._kept_key(session_id), kept, KEPT_SECONDS)
        except VaultFull:
            raise ApiError(503, "calls_full", f"too many calls are waiting on {self.title} right now; try again",
                           retry_after=5) from None

    async def keep_verdict(self, session_id: str, answered_by: str) -> None:
        """The answering-machine verdict told to the call's bot, kept beside the call's values (read afresh: a
        Telnyx call's first callback may have added its SID), so a bot attached after it came is told too."""
        kept = await self.kept_call(session_id)
        if kept is not None:
            await self.keep_call(session_id, {**kept, ANSWERED_BY_KEPT: answered_by})

    async def kept_verdict(self, session_id: str) -> str | None:
        """The verdict kept for the call's bot, if one came. `StoreUnavailable` when the store cannot say."""
        verdict = (await self.kept_call(session_id) or {}).get(ANSWERED_BY_KEPT)
        return verdict if isinstance(verdict, str) else None

    async def hang_up(self, call_sid: str) -> None:
        """Ends a live call (`Status=completed`); a call already over is left as it is."""
        try:
            await self._resource.update(call_sid, status="completed")
        except TwilioRefused as exc:
            if exc.code not in self._resource.gone_codes:
                raise

    async def hand_over(self, call_sid: str, stream_url: str) -> None:
        """The live call's media moved to a new stream (the carrier ends the first one)."""
        await self._resource.update(call_sid, self.stream_document(stream_url))

    def stream_document(self, stream_url: str) -> str:
        raise NotImplementedError

    def create_for(self, *, to: str, caller_id: str, stream_url: str, status_url: str, amd_url: str,
                   voicemail: str) -> Any:
        """The create's parameters, as this carrier takes them."""
        raise NotImplementedError

    def _kept_key(self, session_id: str) -> str:
        return f"{self.carrier}-call:{session_id}"

    async def _create(self, create: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _sid_of(self, answer: dict[str, Any]) -> str | None:
        return str(answer.get("sid", "")) or None

    def _refusal(self, exc: TwilioRefused) -> ApiError:
        """The API's own error for a refused create: a throttle, the dispatcher's credential, or the carrier's
        words. A carrier names its refusals of the numbers in its `_refusal`."""
        detail = f"{self.title} refused the call: {exc.message}" + (f" (error {exc.code})" if exc.code else "")
        if exc.status == 429:
            return ApiError(429, f"{self.carrier}_throttled", detail + "; try again after Retry-After",
                            retry_after=max(1.0, exc.retry_after or 1.0))
        if exc.status in (401, 403):
            return ApiError(502, f"{self.carrier}_refused", detail + f"; check {self.credentials_named}")
        return ApiError(502, f"{self.carrier}_refused", detail)
