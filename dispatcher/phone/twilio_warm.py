"""A warm transfer of a Twilio call: the person is called while the caller stays with the bot, briefed by
Twilio's `<Say>`, then both calls are joined in one conference (docs/phone.md, "Handing a call to a person").

1. The consult call is created (https://www.twilio.com/docs/voice/api/call-resource): `To` the person, `From`
   the number the caller reached, `Timeout` the SIP edge's ring (12 s), a signed `StatusCallback`, and TwiML
   that says the briefing and then `<Redirect>`s to the dispatcher: that request marks the person briefed.
2. The briefed request is answered with `<Dial><Conference>` (https://www.twilio.com/docs/voice/twiml/conference);
   whoever of the two leaves ends it for both.
3. The caller's call is updated to the same conference: the session ends `transferred` (`carrier_status: "warm"`).

Callbacks may reach any replica, so what they say is kept in the store by the transfer's id; the first claim
of its `outcome` decides: `briefed` or `given_up` (a late `<Redirect>` is answered `<Hangup/>`, a given-up
transfer's ringing call is cancelled). The waiting replica renews a short `waiting` mark: a callback that finds
it gone (that replica was killed) gives the transfer up itself.

Unanswered, busy, or hung up during the briefing: the consult call is ended, the caller never left the bot, and
the request answers 409 `person_unanswered`, `person_busy` or `person_left`. A create whose answer never came is
given up at once and the call its status callback names is cancelled, now or when that callback comes: a call
is never looked for by its numbers, which another transfer's live call to the same person shares.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

from botchannel.transfer import DEFAULT_BRIEFING, FAILED_SECONDS, LINE_SECONDS, METHOD_WARM_TRANSFER, SUMMARY_CHARS
from dispatcher.errors import ApiError
from dispatcher.phone.transfer_target import E164, TransferTarget, speakable
from dispatcher.phone.twilio_calls import CALL_SID, CallsResource, TwilioCalls, TwilioRefused, Unanswered
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import FirstClaims

log = logging.getLogger("dispatcher.phone")

RING_SECONDS = 12  # the person's ring, as the SIP edge's warm transfer (sipedge/call_transfer.py PERSON_RING_SECONDS)
POLL_SECONDS = 0.2  # the waiting replica reads the callbacks' records this often
CREATE_SECONDS = 6.0  # the create, its one retry on a 429 included
FOUND_SECONDS = 2.0  # after a lost create: how long its `initiated` callback may take to name the call
KEPT_SECONDS = 120.0  # a transfer's records: past its whole wait, and a late callback's
WAITING_SECONDS = 5.0  # the waiter's mark, renewed every poll: a replica silent this long waits no more
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
RINGING = frozenset({"queued", "initiated", "ringing"})
ENDED = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
BRIEFED, GIVEN_UP, WAITING = "briefed", "given_up", "waiting"
ABANDONED = "abandoned"  # the record of a transfer given up, whatever its outcome reads
# The callbacks' routes (dispatcher/api/routers/twilio_warm.py, telnyx_warm.py), as served and as handed out.
CALLBACK_ROUTE = "/{session_id}/{transfer}/{token}"  # under `warm_prefix(carrier)`, then a kind:
STATUS_CALLBACK, BRIEFED_CALLBACK = "status", "briefed"
HANG_UP = "<Response><Hangup/></Response>"

# The session's bot, wherever its channel is (dispatcher/channel/remote.py `ask_bot`): (session, method, params,
# timeout) → its answer, None where no replica holds it.
AskBot = Callable[[str, str, Mapping[str, Any], float], Awaitable[Mapping[str, Any] | None]]


def callback_token(key: bytes, carrier: str, session_id: str, transfer: str, created: int, to: str,
                   sender: str) -> str:
    """The URL's last secret segment: `{created}.{parties}.{mac}`. The carrier signs the body (Telnyx) or the
    URL (Twilio), never what the URL was handed out for: the MAC binds session, transfer and creation time (a
    URL expires), `parties` the create's `To`/`From` (keyed: the numbers never show in a path)."""
    parties = _parties(key, transfer, to, sender)
    return f"{created}.{parties}.{_mac(key, carrier, session_id, transfer, created, parties)}"


@dataclass(frozen=True)
class CallbackUrl:
    """What a callback URL's MAC vouches for: when its transfer was created, and a MAC of its call's numbers."""
    created: int
    parties: str

    def expired(self, now: float) -> bool:
        return now - self.created > KEPT_SECONDS  # no transfer's callback is heard later (its records are gone)

    def names(self, key: bytes, transfer: str, to: str, sender: str) -> bool:
        """Whether a body's `To`/`From` are the create's: only then may it be the transfer's own call."""
        return hmac.compare_digest(_parties(key, transfer, to, sender).encode(), self.parties.encode())


def callback_url(key: bytes, carrier: str, session_id: str, transfer: str, presented: str) -> CallbackUrl | None:
    """The URL's segment checked against its MAC; None when it was not handed out for that session and transfer."""
    created, _, rest = presented.partition(".")
    parties, _, mac = rest.partition(".")
    if not created.isdigit() or len(created) > 12:
        return None
    if not hmac.compare_digest(_mac(key, carrier, session_id, transfer, int(created), parties).encode(), mac.encode()):
        return None
    return CallbackUrl(int(created), parties)


def _mac(key: bytes, carrier: str, session_id: str, transfer: str, created: int, parties: str) -> str:
    digest = hmac.new(key, f"{carrier}-warm|{session_id}|{transfer}|{created}|{parties}".encode(),
                      hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()


def _parties(key: bytes, transfer: str, to: str, sender: str) -> str:
    digest = hmac.new(key, f"warm-parties|{transfer}|{to}|{sender}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:12]).decode()


def warm_prefix(carrier: str) -> str:
    """Where a carrier's warm callbacks are routed: `/phone/{carrier}/warm`."""
    return f"/phone/{carrier}/warm"


def record_key(transfer: str, what: str) -> str:
    """The store's record of what a transfer's callbacks said: `sid`, `answered`, `ended`, `outcome`."""
    return f"twilio-warm:{transfer}:{what}"


def conference_twiml(transfer: str, time_limit: int | None = None) -> str:
    """Both calls' TwiML: the room is the transfer's (a random id: no personal data names it, as Twilio asks)."""
    limit = f' timeLimit="{int(time_limit)}"' if time_limit is not None else ""
    return (f'<Response><Dial{limit}><Conference startConferenceOnEnter="true" endConferenceOnExit="true" '
            f'beep="false">vf-warm-{escape(transfer)}</Conference></Dial></Response>')


def consult_twiml(line: str, briefed_url: str) -> str:
    """The person's call: the briefing, then the dispatcher's word on what follows (the conference, or a hang-up)."""
    return f'<Response><Say>{escape(line)}</Say><Redirect method="POST">{escape(briefed_url)}</Redirect></Response>'


def our_number(call: dict[str, Any]) -> str | None:
    """The number the caller reached (an inbound call's `to`) or was called from (a placed call's `from`)."""
    number = call.get("to") if call.get("direction") == "inbound" else call.get("from")
    return number if isinstance(number, str) and E164.fullmatch(number) else None


@dataclass(frozen=True)
class Consulted:
    transfer: str  # the transfer's id, its conference's name
    sid: str  # the call to the person


@dataclass(frozen=True)
class WarmCallbacks:
    base: str  # where the carrier reaches this dispatcher (PHONE_PUBLIC_URL, or this region's URL)
    key: bytes  # the MAC key of the callbacks' URLs (the call tokens' key)
    carrier: str = "twilio"  # whose routes: /phone/{carrier}/warm/…, each checking its carrier's signature

    def url(self, session_id: str, transfer: str, what: str, *, created: int, to: str, sender: str) -> str:
        """The URL of one callback (`what`: STATUS_CALLBACK or BRIEFED_CALLBACK), its route's own path."""
        token = callback_token(self.key, self.carrier, session_id, transfer, created, to, sender)
        path = CALLBACK_ROUTE.format(session_id=session_id, transfer=transfer, token=token)
        return f"{self.base}{warm_prefix(self.carrier)}{path}/{what}"


class TwilioWarm:
    """The consult call and its wait; `bridge` (the caller's update) is the transfer's own (transfers.py).
    Telnyx's TeXML calls are driven by the same steps (telnyx_warm.py overrides the create and the ids)."""

    carrier = "Twilio"
    call_id = CALL_SID  # the ids the consult call's updates may name (a URL path)
    # The update's `Status` that ends a call still ringing, in order.
    ringing_ends: tuple[str, ...] = ("canceled", "completed")

    def __init__(self, rest: CallsResource, records: FirstClaims, callbacks: WarmCallbacks, ask_bot: AskBot,
                 *, ring_seconds: int = RING_SECONDS, poll_seconds: float = POLL_SECONDS,
                 found_seconds: float = FOUND_SECONDS, waiting_seconds: float = WAITING_SECONDS) -> None:
        self._rest, self._records, self._callbacks = rest, records, callbacks
        self._ask_bot = ask_bot
        self._ring, self._poll, self._found = ring_seconds, poll_seconds, found_seconds
        self._waiting = waiting_seconds  # the waiter's mark: a replica silent this long waits no more
        self._telling: set[asyncio.Task[None]] = set()  # the bot told a step, in the background
        self._ending: set[asyncio.Future[None]] = set()  # a cancelled transfer's give-up, shielded

    async def consult(self, caller_sid: str, session_id: str, target: TransferTarget, time_limit: int,
                      wait_until: float, caller_ended: asyncio.Event | None = None) -> Consulted:
        """The person called, briefed and waiting in the conference. An `ApiError` otherwise (409 `person_*`:
        the consult call is over, the caller still with the bot, which is told: the `failed` step; 409
        `call_over`: `caller_ended` was set, the caller hung up, and the call to the person is ended)."""
        try:
            return await self._consult(caller_sid, session_id, target, time_limit, wait_until, caller_ended)
        except ApiError as exc:
            if exc.code.startswith("person_"):
                self._tell(session_id, {"event": "failed", "reason": exc.code})
            raise

    async def _consult(self, caller_sid: str, session_id: str, target: TransferTarget, time_limit: int,
                       wait_until: float, caller_ended: asyncio.Event | None) -> Consulted:
        caller = await self._rest.fetch(caller_sid)
        if caller.get("status") != "in-progress":
            raise ApiError(409, "call_over", "the caller's call is no longer in progress "
                           f"({self.carrier}: {caller.get('status')})")
        sender = our_number(caller)
        if sender is None:
            raise ApiError(409, "warm_unsupported", "this call's own number (the one the caller reached, or a placed "
                           f"call's caller id) is not a phone number {self.carrier} can call the person from: a "
                           "cold transfer (\"mode\": \"cold\") works here")
        line = target.summary or await self._bot_line(session_id, target.to)
        transfer = uuid.uuid4().hex
        created = int(time.time())  # under the URLs' MAC: they expire with the transfer

        def url(what: str) -> str:
            return self._callbacks.url(session_id, transfer, what, created=created, to=target.to, sender=sender)

        form = [("To", target.to), ("From", sender), ("Timeout", str(self._ring)), ("TimeLimit", str(time_limit)),
                ("Twiml", self.consult_document(line, url(BRIEFED_CALLBACK))), ("StatusCallback", url(STATUS_CALLBACK)),
                ("StatusCallbackMethod", "POST"), *(("StatusCallbackEvent", event) for event in STATUS_EVENTS)]
        try:  # marked before the call exists, so that its every callback finds someone waiting for it, through
            # the create too: its callbacks may come before its answer, and nothing renews the mark till then.
            await self._records.first(record_key(transfer, "waiting"), WAITING, self._waiting + CREATE_SECONDS)
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the store did not answer, so the call to the person could not "
                           "be followed: nobody was called and the caller is still with the bot; try again",
                           retry_after=1.0) from None
        sid: str | None = None
        try:
            try:
                async with asyncio.timeout(CREATE_SECONDS):
                    sid = await self._create(caller_sid, form, transfer)
            except (Unanswered, TimeoutError) as exc:
                log.warning("phone call %s: %s did not answer the warm transfer's call (%s): cancelling whatever "
                            "it placed", session_id, self.carrier, str(exc) or "out of time")
                await self._lost_create(transfer)
                raise ApiError(503, "carrier_unavailable", f"{self.carrier} did not answer the call to the person; "
                               "any call it placed is cancelled and the caller is still with the bot: try again",
                               retry_after=1.0) from None
            log.info("phone call %s: warm transfer %s: calling the person (%s)", session_id, transfer, sid)
            self._tell(session_id, {"event": "ringing", "to": target.to})  # the bot keeps the caller company
            sid = await self._wait(transfer, sid, session_id, wait_until, caller_ended)
        except asyncio.CancelledError:
            # This replica stops (or the request was dropped) mid-transfer: nobody will join the caller to the
            # person, so the transfer is given up and the person's call ended, whatever cancels this meanwhile.
            ending = asyncio.ensure_future(self._abandon(transfer, sid))
            self._ending.add(ending)
            ending.add_done_callback(self._ending.discard)
            await asyncio.shield(ending)
            raise
        return Consulted(transfer, sid)

    def consult_document(self, line: str, briefed_url: str) -> str:
        """What the person hears once they answer: the briefing, then the `<Redirect>` that marks them briefed."""
        return consult_twiml(line, briefed_url)

    def conference(self, transfer: str, time_limit: int | None = None) -> str:
        """Both calls' document: the transfer's conference room."""
        return conference_twiml(transfer, time_limit)

    async def _create(self, caller_sid: str, form: list[tuple[str, str]], transfer: str) -> str | None:
        """The consult call placed: its id, or None where the create's answer names none (Telnyx's, Plivo's: its
        status callbacks name it, kept as the transfer's `sid` record)."""
        assert isinstance(self._rest, TwilioCalls)
        created = await self._rest.create(form)
        return str(created.get("sid") or "") or None

    async def _abandon(self, transfer: str, sid: str | None) -> None:
        """The transfer given up (a `<Redirect>` still to come is answered `<Hangup/>`, a later status callback
        ends the call) and the person's call, when known, ended: ringing or answered, it is nobody's now."""
        await self._give_up(transfer)
        if not sid:
            with contextlib.suppress(StoreUnavailable):
                sid = await self._records.held(record_key(transfer, "sid"))
        if sid:
            await self.hang_up(sid, answered=False)  # `canceled`, else (answered) `completed`

    async def _give_up(self, transfer: str) -> None:
        """Marked given up whatever its outcome reads: a `<Redirect>` that claimed `briefed` just before must not
        leave the person alone in a room nobody joins (a later callback of the call ends it)."""
        with contextlib.suppress(StoreUnavailable):
            await self._records.first(record_key(transfer, ABANDONED), GIVEN_UP, KEPT_SECONDS)
        await self._decide(transfer, GIVEN_UP)

    async def _bot_line(self, session_id: str, to: str) -> str:
        """The bot's own briefing (its `on_warm_transfer` handler's), else the default one."""
        try:
            answer = await self._ask_bot(session_id, METHOD_WARM_TRANSFER, {"event": "line", "to": to}, LINE_SECONDS)
        except (ApiError, TimeoutError) as exc:  # an older bot refuses `line`; a busy one may not answer in time
            log.info("phone call %s: the bot gave no briefing (%s): the default one is said", session_id, exc)
            return DEFAULT_BRIEFING
        line = answer.get("line") if answer is not None else None
        if not isinstance(line, str) or not line.strip() or not speakable(line[:SUMMARY_CHARS]):
            # Held to the summary's rule: a control character would make the `<Say>` invalid XML (no call at all).
            if isinstance(line, str) and line.strip():
                log.info("phone call %s: the bot's briefing holds a control character: the default one is said",
                         session_id)
            return DEFAULT_BRIEFING
        return line[:SUMMARY_CHARS]

    def _tell(self, session_id: str, step: dict[str, str]) -> None:
        """The bot says its line for `step` to the caller, who is with it (`ringing`: the person is being called;
        `failed`: they could not take the call, while the 409 goes back), the transfer not waiting on it."""
        async def tell() -> None:
            try:
                await self._ask_bot(session_id, METHOD_WARM_TRANSFER, step, FAILED_SECONDS)
            except (ApiError, TimeoutError) as exc:
                log.warning("phone call %s: the bot was not told the warm transfer's %s: %s", session_id,
                            step["event"], exc)

        task = asyncio.create_task(tell())
        self._telling.add(task)
        task.add_done_callback(self._telling.discard)

    async def _wait(self, transfer: str, sid: str | None, session_id: str, wait_until: float,
                    caller_ended: asyncio.Event | None) -> str:
        """Until the person is briefed (returns the consult call's id: the create's, else the one its first
        status callback named), or the call to them is over or out of time, or the caller hung up (`ApiError`)."""
        loop = asyncio.get_running_loop()
        while True:
            if caller_ended is not None and caller_ended.is_set():
                log.info("phone call %s: the caller hung up during warm transfer %s: ending the call to the person",
                         session_id, transfer)
                await self._abandon(transfer, sid)
                raise ApiError(409, "call_over", "the caller hung up while the person was being called; the call "
                               "to the person is ended")
            try:
                if not await self._records.keep(record_key(transfer, "waiting"), WAITING, self._waiting):
                    await self._records.first(record_key(transfer, "waiting"), WAITING, self._waiting)
                sid = sid or await self._records.held(record_key(transfer, "sid"))
                ended = await self._records.held(record_key(transfer, "ended"))
                outcome = await self._records.held(record_key(transfer, "outcome"))
                answered = await self._records.held(record_key(transfer, "answered"))
            except StoreUnavailable:
                ended = outcome = answered = None  # asked again until the wait ends
            if ended is not None:
                await self._decide(transfer, GIVEN_UP)
                raise _person_gone(ended, answered is not None, self.carrier)
            if outcome == BRIEFED and sid:
                return sid
            if outcome == GIVEN_UP:  # by a callback that found no mark: the store lost this wait's for a while
                await self._end(transfer, sid, answered=answered is not None)
                raise ApiError(409, "person_unanswered", "the transfer was given up while the store did not answer; "
                               "the call to the person is ended and the caller is still with the bot")
            if loop.time() >= wait_until:
                break
            await asyncio.sleep(self._poll)
        decided = await self._decide(transfer, BRIEFED if answered and sid else GIVEN_UP)
        if decided == BRIEFED and answered and sid:
            # Still hearing the briefing: joined now, as the SIP edge bridges once its briefing's time is up.
            with contextlib.suppress(TwilioRefused, Unanswered, TimeoutError):
                async with asyncio.timeout(CREATE_SECONDS):
                    await self._rest.update(sid, self.conference(transfer))
                log.info("phone call %s: warm transfer %s: the briefing cut short, joined", session_id, transfer)
                return sid
        elif decided == BRIEFED and sid:
            return sid  # the `<Redirect>` came just now
        await self._end(transfer, sid, answered=answered is not None)
        raise ApiError(409, "person_unanswered", "the person was not reached in time (their call is ended); the "
                       "caller is still with the bot")

    async def _end(self, transfer: str, sid: str | None, *, answered: bool) -> None:
        """The consult call ended, by its id, else by the one its status callback names by then (if any)."""
        if sid:
            await self.hang_up(sid, answered=answered)
        else:
            await self._abandon(transfer, None)

    async def _decide(self, transfer: str, outcome: str) -> str | None:
        """The transfer's outcome, claimed first here or by its `<Redirect>` (None: the store did not answer)."""
        try:
            return await self._records.first(record_key(transfer, "outcome"), outcome, KEPT_SECONDS)
        except StoreUnavailable:
            return None

    async def hang_up(self, sid: str, *, answered: bool) -> None:
        """The consult call ended: `canceled` while it rings, `completed` once answered (Twilio's update takes
        these two: https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource; Telnyx's,
        `completed` alone)."""
        if not self.call_id.fullmatch(sid):
            return
        for status in (("completed",) if answered else self.ringing_ends):
            try:
                async with asyncio.timeout(CREATE_SECONDS):
                    now = await self._rest.update(sid, status=status)
            except (TwilioRefused, Unanswered, TimeoutError) as exc:
                log.warning("warm transfer: ending the call to the person (%s) failed: %s", sid, exc)
                continue
            if now.get("status") in ENDED:
                return

    async def heard(self, transfer: str, sid: str, status: str) -> bool:
        """A verified status callback of the consult call (either carrier's route), kept for the waiting replica
        when `sid` is the transfer's own call (the first the create's numbers named); whether that call must be
        ended now (the transfer given up while it rings or is answered: `end_given_up`). `StoreUnavailable`:
        nothing was decided, the carrier retries."""
        if not await own_call(self._records, transfer, sid):
            return False  # another call's body: ignored
        outcome = await record_status(self._records, transfer, status)
        return status in RINGING | {"in-progress"} and (
            outcome == GIVEN_UP or await self._records.held(record_key(transfer, ABANDONED)) is not None)

    async def end_given_up(self, session_id: str, transfer: str, sid: str, status: str) -> None:
        log.info("phone call %s: warm transfer %s was given up: ending its call to the person", session_id, transfer)
        await self.hang_up(sid, answered=status == "in-progress")

    async def briefed(self, transfer: str, sid: str, status: str) -> str:
        """A verified `<Redirect>` after the briefing: the conference only for the transfer's own call (recorded
        here first if no status callback named it yet), answered, and not given up; else a hang-up."""
        if status != "in-progress" or not await own_call(self._records, transfer, sid):
            return HANG_UP
        return self.conference(transfer) if await briefed(self._records, transfer) != HANG_UP else HANG_UP

    async def decided(self, transfer: str, sid: str) -> str | None:
        """What `briefed` answered the transfer's call, for a copy of that `<Redirect>` (the conference TwiML is
        the same every time); None while nothing is decided (`StoreUnavailable` as `briefed`)."""
        own = await self._records.held(record_key(transfer, "sid"))
        outcome = await self._records.held(record_key(transfer, "outcome"))
        if own is None or outcome is None:
            return None
        return self.conference(transfer) if own == sid and outcome == BRIEFED else HANG_UP

    async def _lost_create(self, transfer: str) -> None:
        """Whatever a create whose answer was lost placed is cancelled: the call its status callback names as this
        transfer's, never one found by its numbers (another transfer's or another call's to the same person may
        be live). The transfer is given up first: a callback that comes later has its call ended by the status
        route (dispatcher/api/routers/twilio_warm.py)."""
        await self._give_up(transfer)
        loop = asyncio.get_running_loop()
        until = loop.time() + self._found
        sid = None
        while sid is None and loop.time() < until:
            with contextlib.suppress(StoreUnavailable):
                sid = await self._records.held(record_key(transfer, "sid"))
            if sid is None:
                await asyncio.sleep(self._poll)
        if sid is not None:
            await self.hang_up(sid, answered=False)


def _person_gone(status: str, answered: bool, carrier: str) -> ApiError:
    """Why the call to the person ended before the briefing did (its final CallStatus)."""
    if status == "busy":
        return ApiError(409, "person_busy", "the person's line was busy; the caller is still with the bot")
    if answered:
        return ApiError(409, "person_left", "the person hung up during the briefing; the caller is still with the bot")
    return ApiError(409, "person_unanswered", f"the person did not answer ({carrier}: {status}); the caller is still "
                    "with the bot")


async def own_call(records: FirstClaims, transfer: str, sid: str) -> bool:
    """Whether `sid` is the transfer's call: the first one its callbacks named (a first claim, at every replica).
    Callers check first that the body's numbers are the create's (`CallbackUrl.names`)."""
    return await records.first(record_key(transfer, "sid"), sid, KEPT_SECONDS) == sid


async def record_status(records: FirstClaims, transfer: str, status: str) -> str | None:
    """A signed status callback of the transfer's own call, kept for the waiting replica (`own_call` claimed the
    call first: one claim a callback); the transfer's outcome."""
    if status == "in-progress":
        await records.first(record_key(transfer, "answered"), status, KEPT_SECONDS)
    if status in ENDED:
        await records.first(record_key(transfer, "ended"), status, KEPT_SECONDS)
    outcome = await records.held(record_key(transfer, "outcome"))
    return outcome if outcome is not None else await _unless_abandoned(records, transfer)


async def briefed(records: FirstClaims, transfer: str) -> str:
    """The `<Redirect>` after the briefing: the conference, unless the transfer was given up first (or its
    waiter is gone: nobody would join the person there)."""
    if await records.held(record_key(transfer, ABANDONED)) is not None:
        return HANG_UP
    await _unless_abandoned(records, transfer)
    outcome = await records.first(record_key(transfer, "outcome"), BRIEFED, KEPT_SECONDS)
    return conference_twiml(transfer) if outcome == BRIEFED else HANG_UP


async def _unless_abandoned(records: FirstClaims, transfer: str) -> str | None:
    """The transfer given up (its outcome, as first claimed) when no replica renews its mark of waiting for it
    (killed mid-wait); None while one does."""
    if await records.held(record_key(transfer, "waiting")) is not None:
        return None
    return await records.first(record_key(transfer, "outcome"), GIVEN_UP, KEPT_SECONDS)

