"""A carrier's Calls API, seen from the dispatcher's side of a call placed out (Twilio's: twilio_dialer.py;
Telnyx's TeXML: telnyx_dialer.py): its pace, its create, what its callbacks read back, and the two changes
an answering machine may make (hang up; hand the call to a fresh stream whose bot is told who answered).
One implementation; a carrier says how its create is sent, how its refusals read, and its stream's XML."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.phone.call_pace import pace_turn
from dispatcher.phone.twilio_calls import CallsResource, TwilioRefused, Unanswered
from dispatcher.phone.twilio_dial import KEPT_SECONDS, DialSettings
from dispatcher.regions.pace_homes import PaceTurn, RegionPaces
from dispatcher.store.coordination import CreateLimits, FirstClaims, SessionValues
from dispatcher.store.secrets_vault import VaultFull
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

# What arrives after the create is recorded beside the call's values, each once under a record of its own (the
# store's first claim, across replicas): a read-modify-write of the values would let one replica's write drop
# another's. The first word is kept: a call's SID is named once (Twilio: the create's answer; Telnyx: the first
# signed callback), and its carrier sends one verdict (a repeat cannot change what a bot was told).
SID_RECORD = "call-sid"
VERDICT_RECORD = "call-verdict"
# An earlier version kept both inside the call's values: read there still for a call it placed.
CALL_SID_KEPT = "call_sid"
ANSWERED_BY_KEPT = "answered_by"
SID_RETRY_DELAYS_SECONDS = (0.25, 1.0)  # the SID is the only way to hand the call to a person: worth a wait
UNANSWERED = "_unanswered"  # the ending of the code of a create whose answer never came: it may ring yet


class Dialer:
    carrier = "twilio"  # as `POST /calls` names it
    title = "Twilio"  # as people read it
    setting_prefix = "TWILIO"
    credentials_named = "TWILIO_ACCOUNT_SID and its credentials"  # what a 401 from the carrier asks to check

    def __init__(self, settings: DialSettings, resource: CallsResource, account_sid: str,
                 limits: CreateLimits | RegionPaces,
                 kept: SessionValues, records: FirstClaims) -> None:
        self.settings = settings
        self._resource = resource
        self.account = account_sid
        self._limits = limits
        self._kept = kept  # the call's values, sealed: written once, before the create
        self._records = records  # its SID and verdict, each recorded once

    async def pace(self, holder: str | None = None) -> PaceTurn:
        """Waits for the account's next turn (its calls a second, across every replica and region), shared
        between keys (`holder`: the caller's); 429 past the bound."""
        return await pace_turn(self._limits, f"{self.carrier}:{self.account}", self.settings.calls_per_second,
                           self.settings.max_wait_seconds, code=f"{self.carrier}_paced",
                           what=f"the {self.title} account {self.account}",
                           setting=f"{self.setting_prefix}_CALL_MAX_WAIT_SECONDS", holder=holder)

    async def place(self, session_id: str, create: Any, kept: dict[str, Any]) -> str | None:
        """Creates the call, its values kept first (a callback may come before the create's answer); the
        call's SID where the answer names one. `ApiError` when it was not placed, or (504) when the
        carrier's answer never came."""
        await self._keep_values(session_id, kept)
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
            await self._keep_sid(session_id, sid)
        return sid

    async def _keep_sid(self, session_id: str, sid: str) -> None:
        """The call's SID recorded beside its values, asked again through a store's blink. The call is placed by
        now: a store that cannot keep it leaves the call as it is, which its bot then cannot transfer
        (`call_not_verified`)."""
        for delay in (*SID_RETRY_DELAYS_SECONDS, None):
            try:
                await self.bind_call(session_id, sid)
                return
            except StoreUnavailable as exc:
                if delay is None:
                    log.warning("placed call %s: its %s SID was not kept, so it cannot be transferred: %s",
                                session_id, self.title, exc)
                    return
            await asyncio.sleep(delay)

    async def bind_call(self, session_id: str, sid: str) -> str:
        """The SID recorded first for the session's call (`sid` when it is the first named), across replicas.
        `StoreUnavailable` when the store cannot say."""
        return await self._records.first(self._record(SID_RECORD, session_id), sid, KEPT_SECONDS)

    async def placed_call(self, session_id: str) -> str | None:
        """The call placed for `session_id` as a transfer names it, where the carrier named it to this dispatcher
        (Twilio: the create's answer; Telnyx: the first signed callback); None for a session this dispatcher
        placed no call for, or whose call the carrier did not name yet. `StoreUnavailable` when the store
        cannot say."""
        sid = await self._recorded(session_id, SID_RECORD, CALL_SID_KEPT)
        return self._transfer_id(sid) if sid is not None else None

    def _transfer_id(self, sid: str) -> str | None:
        """A kept SID as this carrier's transfer names the call (Twilio's: the SID itself)."""
        return sid

    async def kept_call(self, session_id: str) -> dict[str, Any] | None:
        return await self._kept.get(self._kept_key(session_id))

    async def _keep_values(self, session_id: str, kept: dict[str, Any]) -> None:
        """The call's values, kept for the call's life; never written again (what comes later has its record)."""
        try:
            await self._kept.put(self._kept_key(session_id), kept, KEPT_SECONDS)
        except VaultFull:
            raise ApiError(503, "calls_full", f"too many calls are waiting on {self.title} right now; try again",
                           retry_after=5) from None

    async def keep_verdict(self, session_id: str, answered_by: str) -> None:
        """The answering-machine verdict told to the call's bot, recorded beside the call's values (the first
        one the carrier sent), so a bot attached after it came is told too. `StoreUnavailable` when the store
        cannot keep it."""
        await self._records.first(self._record(VERDICT_RECORD, session_id), answered_by, KEPT_SECONDS)

    async def kept_verdict(self, session_id: str) -> str | None:
        """The verdict kept for the call's bot, if one came. `StoreUnavailable` when the store cannot say."""
        return await self._recorded(session_id, VERDICT_RECORD, ANSWERED_BY_KEPT)

    async def _recorded(self, session_id: str, record: str, earlier_field: str) -> str | None:
        if (found := await self._records.held(self._record(record, session_id))) is not None:
            return found
        earlier = (await self.kept_call(session_id) or {}).get(earlier_field)
        return earlier if isinstance(earlier, str) else None

    def _record(self, record: str, session_id: str) -> str:
        return f"{self.carrier}-{record}:{session_id}"

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
