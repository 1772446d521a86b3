"""A live call handed to a person, cold: the carrier is told to ring `to` instead of streaming to the
bot (for Twilio: the call updated with `<Dial>` TwiML, dispatcher/phone/twilio_calls.py; for Telnyx, the
same with TeXML through its Twilio-shaped TeXML REST API, dispatcher/phone/telnyx_calls.py; for Plivo, the
call pointed at a one-time URL whose XML dials, dispatcher/phone/plivo_calls.py; for a call
through the SIP edge: a REFER, or the edge's bridge, dispatcher/phone/sip_transfers.py), which ends
the call's stream; the session then ends as `transferred`. Exotel has no such API: its call's stream is
closed here and the flow's Connect applet asks the dispatcher whom to dial (dispatcher/phone/exotel_transfers.py).
The calls this replica relays are kept here while they last, with the carrier's id for each call.
A Twilio CallSid is trusted only when the call's token came from Twilio's signed webhook and named
the same call: the stream's own `start` message could name any call of the account (whoever holds a
`POST /start` token writes it), and the update redirects whichever call it names. A Telnyx (or Plivo) call's ids
are taken from its token alone (a webhook Telnyx signed minted it): Telnyx's callback pages call the
TeXML CallSid the call's `call_control_id`, the id its stream's `start` names, but that `start` is the
word of whoever opened the stream, and only the token carries the AccountSid the REST path needs. A call
placed out (`POST /calls`): the id its carrier named to the dispatcher (dialer.py `placed_call`).

An update that got no answer may have been done, so it is never sent again: the call is read back once
its stream closed (Twilio ends it when new TwiML takes over), or after `settle_seconds`.
Over, the caller left (a stream closed by a hang-up is not a transfer); still up with its stream
closed, it was transferred; still streaming, it was not (for Plivo, unless it fetched the ticket, whose
record a give-up claims first so that no later fetch dials). A read that fails leaves the outcome unknown:
the call stays `transferring`, so no second `<Dial>` can stack on one Twilio may have taken (the whole
request fits in `budget_seconds`, under the bot's wait for its answer: botchannel/transfer.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.types import Message

from botchannel.json_input import parse_json
from dispatcher.errors import ApiError
from dispatcher.phone.calls import Timeline
from dispatcher.phone.exotel_connect import EXOTEL_CALL_SID
from dispatcher.phone.exotel_transfers import WARM_MISSING as EXOTEL_WARM_MISSING
from dispatcher.phone.exotel_transfers import ExotelTransfers
from dispatcher.phone.placed_turns import PlacedTurns
from dispatcher.phone.plivo_calls import CALL_UUID as PLIVO_CALL_UUID
from dispatcher.phone.sip_transfers import SIP_EDGE_ACCOUNT, WARM_EXTRA_SECONDS, SipTransfers
from dispatcher.phone.spilled_transfers import SpilledTransfers
from dispatcher.phone.telnyx_calls import CALL_ID as TELNYX_CALL_ID
from dispatcher.phone.transfer_allow import TransferTargets, check_allowed
from dispatcher.phone.transfer_target import WARM, WARM_WHERE, TransferTarget
from dispatcher.phone.twilio_calls import CALL_SID, CallsResource, TwilioCalls, TwilioRefused, Unanswered
from dispatcher.phone.twilio_warm import TwilioWarm
from dispatcher.sessions.timeline import CALLER_HUNG_UP, TRANSFERRED
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

TIME_LIMIT_SECONDS = 3600  # the transferred call's longest, unless PHONE_TRANSFER_TIME_LIMIT_SECONDS says
SETTLE_SECONDS = 3.0  # after an unanswered update, how long a stream that took it takes to close
# One request, all of it: the update (5 s a try), the settle and one read back, under the bot's 30 s.
BUDGET_SECONDS = 25.0
READ_SECONDS = 6.0  # of the budget, kept for the read back after an unanswered update
UPDATE_SECONDS = 5.0  # a warm transfer's: of its budget, kept for the caller's update (one try and a 429's retry)
CALL_OVER = frozenset({"completed", "canceled", "failed", "busy", "no-answer"})  # Twilio's, Telnyx's ended statuses
# The carriers whose calls are transferred through their REST API, and their calls' ids.
CALL_IDS = {"twilio": CALL_SID, "telnyx": TELNYX_CALL_ID, "plivo": PLIVO_CALL_UUID}
NOT_CONFIGURED = {
    "twilio": "set TWILIO_ACCOUNT_SID (with TWILIO_AUTH_TOKEN, or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET) so "
              "the dispatcher can update Twilio calls",
    "telnyx": "set TELNYX_TRANSFER_API_KEY (and TELNYX_PUBLIC_KEY, which verifies the webhooks its calls come in "
              "by) so the dispatcher can update Telnyx calls",
    "plivo": "set PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN (which also verifies the webhooks its calls come in by) so "
             "the dispatcher can transfer Plivo calls",
}


NO_EDGES = ("set SIP_EDGE_URL and SIP_EDGE_SECRET so the dispatcher can ask the SIP edge to hand its calls over "
            "(docs/sip.md)")


class PlacedCalls(Protocol):
    """A carrier's calls placed out (dispatcher/phone/dialer.py `Dialer`): the call placed for a session."""

    async def placed_call(self, session_id: str) -> str | None: ...


@dataclass
class LiveCall:
    session_id: str
    carrier: str
    signed_call: str | None  # the CallSid the webhook signed (its token carries it), else None
    call_sid: str | None = None  # Twilio: the stream's own, once its `start` matched the signed one; Telnyx: the signed
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    transferring: bool = False
    transferred: dict[str, Any] | None = None
    held_hang_up: tuple[float, str] | None = None  # a hang-up heard while the transfer was under way
    via_sip_edge: bool = False  # its stream is the SIP edge's (sipedge/stream_frames.py names it)
    sip_edge: object = None  # the edge its stream's `start` named (`edge_url`), unchecked
    stream_said: str | None = None  # the call its stream's `start` named (Twilio's `callSid`), unchecked
    placed: bool = False  # a call this dispatcher placed out: its answering-machine verdict may act on it too
    # Closes the carrier's stream (Exotel's: its flow then moves on to the Connect applet); None: not closable.
    end_stream: Callable[[], Awaitable[None]] | None = None


class Transfers:
    def __init__(self, twilio: TwilioCalls | None, timeline: Timeline | None, targets: TransferTargets | None,
                 *, time_limit: int = TIME_LIMIT_SECONDS, settle_seconds: float = SETTLE_SECONDS,
                 budget_seconds: float = BUDGET_SECONDS, read_seconds: float = READ_SECONDS,
                 sip: SipTransfers | None = None, telnyx: CallsResource | None = None,
                 plivo: CallsResource | None = None, placed: Mapping[str, PlacedCalls] | None = None,
                 turns: PlacedTurns | None = None, twilio_warm: TwilioWarm | None = None,
                 telnyx_warm: TwilioWarm | None = None, plivo_warm: TwilioWarm | None = None,
                 exotel: ExotelTransfers | None = None) -> None:
        self._rest: dict[str, CallsResource | None] = {"twilio": twilio, "telnyx": telnyx, "plivo": plivo}
        # A call's warm transfer by carrier (twilio_warm.py, telnyx_warm.py, plivo_warm.py); None: not configured.
        self._warms: dict[str, TwilioWarm | None] = {"twilio": twilio_warm, "telnyx": telnyx_warm,
                                                      "plivo": plivo_warm}
        self._placed = placed or {}  # by carrier: the calls this dispatcher placed out
        self._turns = turns  # a placed call's transfer or its answering-machine verdict: the first acts
        self._sip = sip
        self.spilled: SpilledTransfers | None = None  # several regions: the calls spilled here from another's edge
        self.exotel = exotel  # an Exotel call's, through its flow's Connect applet (exotel_transfers.py)
        self._budget, self._read = budget_seconds, read_seconds
        self._targets = targets
        self._time_limit = time_limit
        self._timeline = timeline
        self._settle = settle_seconds
        self._live: dict[str, LiveCall] = {}

    def opened(self, session_id: str, carrier: str, signed_call: str | None, handshake: Iterable[Message],
               *, exotel_opened: bool = False) -> LiveCall:
        """The call's bot is attached: its session may be transferred from now on, its CallSid read
        from the carrier's first messages (Twilio's `start`). `exotel_opened`: the stream presented Exotel's
        Basic credential, so Exotel itself opened it and its `start`'s `call_sid` is Exotel's word."""
        call = LiveCall(session_id, carrier, signed_call)
        start = _start_of(handshake)
        said = start.get("callSid") if carrier == "twilio" else None
        call.stream_said = said if isinstance(said, str) else None
        if isinstance(said, str) and said == signed_call:
            call.call_sid = said
        if carrier in ("telnyx", "plivo"):  # only a signed webhook mints a token that names the call
            call.call_sid = signed_call
        exotel_sid = start.get("call_sid")
        if carrier == "exotel" and exotel_opened and isinstance(exotel_sid, str) and EXOTEL_CALL_SID.fullmatch(
                exotel_sid):  # a POST /start token's stream could name any call of the account: not trusted
            call.call_sid = exotel_sid
        # Whoever holds a POST /start token could write this too: the edge then holds no call of the
        # session and refuses (409), so the mark reaches nothing but a refusal.
        call.via_sip_edge = carrier == "exotel" and start.get("account_sid") == SIP_EDGE_ACCOUNT
        # The edge the stream names, checked later: the store's record of an outbound call's edge comes first.
        call.sip_edge = start.get("edge_url") if call.via_sip_edge else None
        self._live[session_id] = call
        return call

    def closed(self, call: LiveCall) -> None:
        call.ended.set()
        if self._live.get(call.session_id) is call:
            del self._live[call.session_id]

    def live(self, session_id: str) -> LiveCall | None:
        return self._live.get(session_id)

    def heard_hang_up(self, call: LiveCall | None, at: float, how: str) -> bool:
        """Whether a carrier's stop is the caller's hang-up to note: during a transfer it is the carrier
        leaving the stream for the person, noted only if the transfer fails."""
        if call is None or not (call.transferring or call.transferred):
            return True
        if call.transferred is None:
            call.held_hang_up = (at, how)
        return False

    async def transfer(self, call: LiveCall, target: TransferTarget) -> dict[str, Any]:
        """Hands the call to `target`: the answer's fields, or an `ApiError` (nothing changed, unless it says)."""
        if call.via_sip_edge:
            return await self._through_edge(call, target)
        if target.mode == WARM and call.carrier == "exotel":
            raise ApiError(409, "warm_unsupported", f"{EXOTEL_WARM_MISSING}; {WARM_WHERE}; a cold transfer "
                           "(\"mode\": \"cold\") works here")
        if target.mode == WARM and call.carrier not in self._warms:
            raise ApiError(409, "warm_unsupported", f"this is a {call.carrier} call: {WARM_WHERE}; a cold transfer "
                           "(\"mode\": \"cold\") works here")
        if call.carrier == "exotel":
            return await self._through_connect_applet(call, target)
        if target.mode == WARM and self._warms[call.carrier] is None and self._rest[call.carrier] is not None:
            raise ApiError(409, "transfer_not_configured", WARM_NOT_CONFIGURED[call.carrier])
        if call.carrier not in CALL_IDS:
            raise ApiError(409, "transfer_unsupported", f"a {call.carrier} call cannot be transferred yet: "
                           "transfers work on Twilio, Telnyx and Plivo media-stream calls, Exotel Voicebot calls and "
                           "calls through the SIP edge (docs/phone.md)")
        rest = self._rest[call.carrier]
        if rest is None:
            raise ApiError(409, "transfer_not_configured", NOT_CONFIGURED[call.carrier])
        self._check_allowed(target)
        if call.call_sid is None and call.signed_call is None:
            await self._placed_here(call)
        if call.call_sid is None or not CALL_IDS[call.carrier].fullmatch(call.call_sid):
            raise ApiError(409, "call_not_verified", f"this call's id was not signed by {rest.carrier}: only a call "
                           f"that came in through the signed webhook (POST /phone/{call.carrier}), or one this "
                           "dispatcher placed (POST /calls) once the carrier named it, can be transferred, since a "
                           "stream opened with a POST /start token could name any call of the account")
        missing = rest.missing_setting()
        if missing is not None:
            raise ApiError(409, "transfer_not_configured", missing)
        self._check_transferable(call)
        await self._take_turn(call)
        call.transferring = True
        try:
            if target.mode == WARM:
                answer, reconciled = await self._warm(rest, call, target)
            else:
                answer, reconciled = await self._update(rest, call, target)
        except OutcomeUnknown:
            raise  # still `transferring`: the carrier may hold the first TwiML, a second one must not follow
        except Exception:
            await _ticket_given_up(rest, call)  # Plivo's ticket, if any, dials no one from now on
            await self._give_turn_back(call)
            self._not_transferred(call)
            raise
        except BaseException:
            self._not_transferred(call)
            raise
        status = WARM if target.mode == WARM else str(answer.get("status") or "unknown")
        return self._transferred(call, target, call.carrier, status, reconciled=reconciled or None)

    async def _placed_here(self, call: LiveCall) -> None:
        """The call's id where this dispatcher placed it: its token was minted before the call existed, so the id
        is the one the carrier named to the dispatcher itself (Twilio's create answer, a Telnyx call's first
        signed callback), recorded beside the call's values; Twilio's only if the stream's `start` named it too."""
        placed = self._placed.get(call.carrier)
        if placed is None:
            return
        try:
            sid = await placed.placed_call(call.session_id)
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the replicas' store is unreachable: cannot read which call "
                           "this dispatcher placed for the session; nothing was transferred, try again",
                           retry_after=2.0) from None
        if sid is not None and (call.carrier != "twilio" or sid == call.stream_said):
            call.call_sid, call.placed = sid, True

    async def _take_turn(self, call: LiveCall) -> None:
        """A placed call is claimed for its transfer, unless its answering-machine verdict already acted on it
        (hung it up, or handed it to a fresh bot): then it is no longer this session's call to hand over."""
        if not call.placed or self._turns is None:
            return
        try:
            taken = await self._turns.take(call.session_id, "transfer")
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the replicas' store is unreachable: cannot record the placed "
                           "call's transfer before its answering-machine verdict acts; nothing was transferred, try "
                           "again", retry_after=2.0) from None
        if not taken:
            raise ApiError(409, "answered_by_machine", "the carrier's answering-machine verdict already acted on "
                           "this placed call (it hung up, or handed the call to a fresh bot: the timeline's "
                           "`call_outcome` says which); it is no longer this session's to transfer")

    async def _give_turn_back(self, call: LiveCall) -> None:
        """The placed call was not transferred: its answering-machine verdict may act on it again."""
        if not call.placed or self._turns is None:
            return
        try:
            await self._turns.give_back(call.session_id, "transfer")
        except StoreUnavailable:
            log.warning("phone call %s: the store did not forget the transfer that was not made: a later "
                        "answering-machine verdict is only noted", call.session_id)

    async def _through_edge(self, call: LiveCall, target: TransferTarget) -> dict[str, Any]:
        """A call through the SIP edge: REFER, or the edge's bridge (dispatcher/phone/sip_transfers.py); a call
        another region's edge holds, spilled here, through that region (dispatcher/phone/spilled_transfers.py)."""
        if self._sip is None and self.spilled is None:
            raise ApiError(409, "transfer_not_configured", NO_EDGES)
        self._check_allowed(target)
        self._check_transferable(call)
        call.transferring = True  # before the store is read: a second transfer asked meanwhile is refused here
        try:
            region = await self.spilled.relayer(call.session_id) if self.spilled is not None else None
            if region is not None and self.spilled is not None:  # its edge is that region's, never one listed here
                handed = await self.spilled.transfer(call.session_id, target, self._time_limit, region)
            elif self._sip is None:
                raise ApiError(409, "transfer_not_configured", NO_EDGES)
            else:
                edge = await self._sip.holding(call.session_id, call.sip_edge)
                handed = await self._sip.transfer(call.session_id, target, self._time_limit, edge)
        except ApiError as exc:
            if exc.code != "transfer_outcome_unknown":  # unknown: it stays `transferring`, never sent again
                self._not_transferred(call)
            raise
        except BaseException:
            self._not_transferred(call)
            raise
        return self._transferred(call, target, "sip", handed.how, sip_to=handed.to, sip_status=handed.sip_status)

    async def _through_connect_applet(self, call: LiveCall, target: TransferTarget) -> dict[str, Any]:
        """An Exotel call: the target recorded for the flow's Connect applet, the bot's stream ended, Exotel's
        GET answered the number (dispatcher/phone/exotel_transfers.py)."""
        if self.exotel is None:
            raise ApiError(409, "transfer_not_configured", "set EXOTEL_API_KEY and EXOTEL_API_TOKEN (the Basic "
                           "credential the Voicebot applet's stream presents): the flow's Connect applet URL is "
                           "derived from them (docs/phone.md)")
        self._check_allowed(target)
        if call.call_sid is None or call.end_stream is None:
            raise ApiError(409, "call_not_verified", "this Exotel stream did not present the Exotel credential "
                           "(wss://KEY:TOKEN@…/ws/exotel) with its call's CallSid: a stream opened with a POST "
                           "/start token could name any call of the account, so only a stream Exotel opened is "
                           "transferred")
        self._check_transferable(call)
        call.transferring = True
        end_stream = call.end_stream
        heard_before: list[tuple[float, str] | None] = []  # a hang-up heard before the dispatcher closed the stream

        async def end() -> None:
            heard_before.append(call.held_hang_up)
            await end_stream()

        try:
            await self.exotel.hand_over(call.session_id, call.call_sid, target, self._time_limit, end)
        except ApiError as exc:
            caller_left = bool(heard_before) and heard_before[0] is not None
            if heard_before and not caller_left:
                call.held_hang_up = None  # the close heard was the dispatcher's own, not the caller's
            if exc.code != "transfer_outcome_unknown":
                self._not_transferred(call)
            if caller_left and exc.code == "connect_not_fetched":
                raise ApiError(409, "call_over", "the caller hung up before Exotel's Connect applet dialled the "
                               "person") from None
            raise
        except BaseException:
            self._not_transferred(call)
            raise
        return self._transferred(call, target, "exotel", "connect_fetched")

    def _check_transferable(self, call: LiveCall) -> None:
        if call.transferring or call.transferred is not None:
            raise ApiError(409, "already_transferring", "this call is already being transferred")
        if call.ended.is_set():
            raise ApiError(409, "call_over", "this call has ended")

    def _not_transferred(self, call: LiveCall) -> None:
        """A transfer that did not happen: the call is the bot's again, and a hang-up held meanwhile is noted."""
        call.transferring = False
        if call.held_hang_up is not None and self._timeline is not None:
            at, how = call.held_hang_up
            self._timeline.note(call.session_id, CALLER_HUNG_UP, at=at, how=how, carrier=call.carrier)

    def _transferred(self, call: LiveCall, target: TransferTarget, carrier: str, status: str,
                     **noted: Any) -> dict[str, Any]:
        """The transfer done: kept on the call (its end reason), the timeline's `transferred`, the answer."""
        call.transferred = {"to": target.to, "mode": target.mode, "at": round(time.time(), 3),
                            "carrier": carrier, "carrier_status": status}
        call.transferring = False
        if self._timeline is not None:
            self._timeline.note(call.session_id, TRANSFERRED, at=call.transferred["at"], to=target.to,
                                mode=target.mode, carrier=carrier, carrier_status=status,
                                **{k: v for k, v in noted.items() if v is not None})
        log.info("phone call %s: transferred (%s, %s: %s)", call.session_id, target.mode, carrier, status)
        return {"session_id": call.session_id, **call.transferred, "status": TRANSFERRED}

    def _check_allowed(self, target: TransferTarget) -> None:
        check_allowed(self._targets, target)

    async def _warm(self, rest: CallsResource, call: LiveCall, target: TransferTarget) -> tuple[dict[str, Any], bool]:
        """A Twilio or Telnyx call's warm transfer: the person called and briefed while the caller stays with the
        bot (twilio_warm.py), then the caller's call joins them in the conference; the person's call ended if not."""
        warm = self._warms[call.carrier]
        assert call.call_sid is not None and warm is not None
        deadline = asyncio.get_running_loop().time() + self._budget + WARM_EXTRA_SECONDS
        wait_until = deadline - self._settle - self._read - UPDATE_SECONDS
        try:
            consulted = await warm.consult(call.call_sid, call.session_id, target, self._time_limit,
                                                        wait_until, call.ended)  # the caller's hang-up ends it
        except TwilioRefused as exc:
            raise _refusal(exc, call.session_id, rest) from None
        except Unanswered:
            raise ApiError(503, "carrier_unavailable", f"{rest.carrier} did not answer a read of the call: nothing "
                           "was transferred, try again", retry_after=1.0) from None
        room = warm.conference(consulted.transfer, rest.dial_time_limit(self._time_limit))
        try:
            return await self._update(rest, call, target, room, deadline, consulted.transfer)
        except OutcomeUnknown:
            raise  # the caller may be in the room already: the person stays there for them
        except BaseException:
            await warm.hang_up(consulted.sid, answered=True)
            raise

    async def _update(self, rest: CallsResource, call: LiveCall, target: TransferTarget, document: str | None = None,
                      deadline: float | None = None, transfer: str | None = None) -> tuple[dict[str, Any], bool]:
        """The carrier's answer to the update (`<Dial>` for `target`, else `document`: warm `transfer`'s room),
        and whether it was found by reading the call back."""
        assert call.call_sid is not None
        if deadline is None:
            deadline = asyncio.get_running_loop().time() + self._budget
        try:
            async with asyncio.timeout_at(deadline - self._settle - self._read):
                if document is not None:
                    return await rest.update(call.call_sid, document, session_id=call.session_id,
                                             transfer=transfer), False
                return await rest.transfer(call.call_sid, target, self._time_limit, call.session_id), False
        except TwilioRefused as exc:
            raise _refusal(exc, call.session_id, rest) from None
        except (Unanswered, TimeoutError) as exc:
            log.warning("phone call %s: %s did not answer the transfer (%s); reading the call back once "
                        "its stream closes", call.session_id, rest.carrier, str(exc) or "out of time")
        return await self._reconcile(rest, call, deadline), True

    async def _reconcile(self, rest: CallsResource, call: LiveCall, deadline: float) -> dict[str, Any]:
        """After an unanswered update, the call read back once its stream closed (or `settle` passed): its
        resource when the update took; `ApiError` when the caller left or it did not take, `OutcomeUnknown`
        when the carrier cannot say."""
        assert call.call_sid is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.ended.wait(), self._settle)
        try:
            async with asyncio.timeout_at(deadline):
                now = await rest.fetch(call.call_sid)
        except TwilioRefused as exc:
            if _call_gone(exc, rest):
                raise _refusal(exc, call.session_id, rest) from None
            log.warning("phone call %s: reading the call back failed (%s)", call.session_id, exc)
            raise OutcomeUnknown(rest.carrier) from None
        except (Unanswered, TimeoutError) as exc:
            log.warning("phone call %s: reading the call back went unanswered (%s)", call.session_id,
                        str(exc) or "out of time")
            raise OutcomeUnknown(rest.carrier) from None
        if str(now.get("status")) in CALL_OVER:
            raise ApiError(409, "call_over", f"the caller hung up before the call was transferred ({rest.carrier}: "
                           f"{now['status']})")
        if call.ended.is_set():
            return now
        if await _fetched(rest, call):  # Plivo's fetch comes after its 202, maybe after the settle
            return now
        raise ApiError(504, "carrier_unanswered", f"{rest.carrier} did not answer the transfer and the call still "
                       "streams to the bot: it was not transferred; ask again", retry_after=1.0,
                       extra={"outcome": "not_transferred"})

    def end_reason(self, call: LiveCall | None, reason: str) -> str:
        """The call's end reason: `transferred` once the carrier took the transfer, whatever closed the stream."""
        return TRANSFERRED if call is not None and call.transferred is not None else reason

    async def aclose(self) -> None:
        for rest in self._rest.values():
            if rest is not None:
                await rest.aclose()
        if self._sip is not None:
            await self._sip.aclose()
        if self.spilled is not None:
            await self.spilled.aclose()


class OutcomeUnknown(ApiError):
    """The carrier answered neither the update nor the read back: the call may or may not be with the person."""

    def __init__(self, carrier: str = "Twilio") -> None:
        super().__init__(504, "transfer_outcome_unknown", f"{carrier} answered neither the transfer nor a read of "
                         "the call: it may have been transferred. It is not sent again, and a new transfer of this "
                         f"call is refused while its stream lasts ({carrier}'s console shows where the call went)",
                         extra={"outcome": "unknown"})


WARM_NOT_CONFIGURED = {
    "twilio": "set PHONE_PUBLIC_URL and TWILIO_AUTH_TOKEN: a warm transfer's call to the person reports back to the "
              "dispatcher there, signed with the token (docs/phone.md)",
    "telnyx": "set PHONE_PUBLIC_URL (or REGIONS) and TELNYX_APPLICATION_SID: a warm transfer's call to the person is "
              "placed by that TeXML application and reports back to the dispatcher there, signed (docs/phone.md)",
    "plivo": "set PHONE_PUBLIC_URL (or REGIONS): a warm transfer's call to the person fetches its briefing from the "
             "dispatcher there and reports back to it, signed with PLIVO_AUTH_TOKEN (docs/phone.md)",
}
CREDENTIALS = {"Twilio": "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET)",
               "Telnyx": "TELNYX_TRANSFER_API_KEY", "Plivo": "PLIVO_AUTH_ID and PLIVO_AUTH_TOKEN"}


API_URLS = {"Twilio": "TWILIO_API_URL", "Telnyx": "TELNYX_API_URL", "Plivo": "PLIVO_API_URL"}


async def _fetched(rest: CallsResource, call: LiveCall) -> bool:
    """Whether the carrier took the transfer though the call still streams: Plivo's ticket fetched. Its
    record is claimed here first, so a fetch that comes later dials no one (plivo_transfer_url.py)."""
    assert call.call_sid is not None
    try:
        killed = await rest.killed_unfetched(call.call_sid)
    except StoreUnavailable:
        log.warning("phone call %s: the store did not say whether %s fetched the transfer", call.session_id,
                    rest.carrier)
        raise OutcomeUnknown(rest.carrier) from None
    return killed is False


async def _ticket_given_up(rest: CallsResource, call: LiveCall) -> None:
    """A transfer given up (refused, the call over, not taken): a ticket the carrier may still fetch (Plivo's
    `aleg_url`, after a read back that found the call over, say) is killed, so its late fetch rings no one
    for a call the dispatcher answered as not transferred."""
    assert call.call_sid is not None
    try:
        killed = await rest.killed_unfetched(call.call_sid)
    except StoreUnavailable:
        log.warning("phone call %s: the store did not record the given-up transfer's ticket as dead",
                    call.session_id)
        return
    if killed is False:
        log.warning("phone call %s: %s fetched the transfer before it was given up", call.session_id, rest.carrier)


def _call_gone(exc: TwilioRefused, rest: CallsResource) -> bool:
    """Whether the carrier says the call is over (dispatcher/phone/twilio_calls.py `is_gone`)."""
    return rest.is_gone(exc)


def _refusal(exc: TwilioRefused, session_id: str, rest: CallsResource) -> ApiError:
    """The carrier's refusal as this API's answer: the caller's doing (the call is over) or the deployment's.
    The carrier's own text is logged, never answered: it names the account (`/Accounts/…`), which is no
    business of a client's or a bot's (for Twilio, half of the Basic pair); its status and code say enough."""
    log.warning("phone call %s: the transfer was refused: %s", session_id, exc)
    carrier = rest.carrier
    said = f"{carrier} answered {exc.status}" + (f", error {exc.code}" if exc.code else "")
    if _call_gone(exc, rest):
        return ApiError(409, "call_over", f"{carrier} no longer has this call in progress ({said})")
    if exc.status == 429:
        return ApiError(503, "carrier_throttled", f"{carrier} is throttling this account's API requests: try again",
                        retry_after=exc.retry_after or 1.0)
    if exc.status in (401, 403):
        return ApiError(502, "carrier_refused", f"{carrier} refused the dispatcher's credentials: check "
                        f"{CREDENTIALS[carrier]}")
    if exc.status == 404:
        return ApiError(502, "carrier_refused", f"{carrier} has no such address ({said}), though the call is live: "
                        f"check {API_URLS[carrier]} and that {CREDENTIALS[carrier]} are of the account that owns "
                        "the number")
    if exc.status >= 500:
        return ApiError(503, "carrier_unavailable", f"{carrier} did not take the transfer ({said}): try again",
                        retry_after=exc.retry_after or 1.0)
    return ApiError(502, "carrier_refused", f"{carrier} refused the transfer ({said}; the dispatcher's log has "
                    f"{carrier}'s message)")


def _start_of(handshake: Iterable[Message]) -> dict[str, Any]:
    """A carrier's `start` message's own fields (`{"event": "start", "start": {…}}`), {} when none came."""
    for message in handshake:
        text = message.get("text")
        if text is None:
            continue
        try:
            event = parse_json(text)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "start" and isinstance(event.get("start"), dict):
            return dict(event["start"])
    return {}
