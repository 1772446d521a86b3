"""A Daily dial-in call handed to a person, cold, by Daily's REST API (`sipCallTransfer`) with the
dispatcher's own `DAILY_API_KEY`: the bot never holds it, and asks over its channel as any bot does.

Any replica can do it: no replica holds a Daily call's media, Daily does. A session is a Daily dial-in
call when the phone path started it (its id is the phone caller's) in a Daily room. The caller is the
room's SIP participant, read from Daily's room presence, never taken from the bot or the client: the
room is private, every token the dispatcher signs names a user of its own (`bot-…`, `user-…`), so the one
participant present without a token's user joined by SIP (the room has `sip.num_endpoints` 1). Daily
documents a participant's user id as its session id when no token set one, so such a participant's
`userId` is its own `id` (or null).

`sipCallTransfer`, not `sipRefer` (docs/phone.md, "Daily dial-in"): these calls come in on Daily's own
PSTN numbers, so the side a REFER would go back to is Daily's carrier, and a REFER names SIP URIs only;
the transfer is documented for dial-in calls and rings numbers and SIP URIs alike. Daily stays in the
media path, so both legs are billed while the caller talks to the person.

A transfer is claimed once per session in the store before Daily is asked (two asks at two replicas:
one acts), and given back when Daily refused it or nothing was sent. No answer (or a 5xx), or the
request cancelled once the POST may be on its way, may have been acted on: it is never sent again, the
claim is kept, and the outcome is unknown (answered so, or noted in the timeline when nobody waits), and
written into the claim's record (daily_transfer_record.py), where Daily's calltransfer webhooks settle it
(daily_calltransfer.py).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Protocol

from botchannel.transfer import TRANSFER_TIMEOUT_SECONDS, WARM_TRANSFER_TIMEOUT_SECONDS
from dispatcher.errors import ApiError
from dispatcher.machines.base import Machine
from dispatcher.media.daily import DailyError, DailyRefused, DailyRooms
from dispatcher.phone.calls import PHONE_CALLER, Timeline
from dispatcher.phone.daily_transfer_record import Outcome, TransferRecord, record_key
from dispatcher.phone.daily_warm import WARM_SECONDS, CallerIdRefused, DailyWarm, LegNotStopped
from dispatcher.phone.transfer_allow import TransferTargets, check_allowed
from dispatcher.phone.transfer_target import WARM, TransferTarget
from dispatcher.sessions.ids import Caller, owned_by
from dispatcher.sessions.timeline import TRANSFERRED
from dispatcher.store.coordination import FirstClaims
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

CLAIM_SECONDS = 3600.0  # a dial-in call's transfer: one per session, as long as a call may still be in its room
# The whole fits under the bot's wait for its answer (botchannel/transfer.py), with room left for the relay's
# look-up before it: one deadline for every read before anything is asked of Daily (the session, the store's
# claim, the room's presence, with their retries), then the transfer (a try bounded by DAILY_TIMEOUT_SECONDS,
# a 429's tries again), past which its outcome is unknown. Each read alone within READ_SECONDS too.
READ_SECONDS = 8.0
TRANSFER_SECONDS = 12.0
SETTLE_SECONDS = 1.0  # an unknown outcome written into the record (or Daily's webhook found there first)
assert 2 * READ_SECONDS + TRANSFER_SECONDS + SETTLE_SECONDS < TRANSFER_TIMEOUT_SECONDS
CARRIER = "daily"
OUTCOME_UNKNOWN = "unknown"  # cancelled with the POST maybe at Daily: where the call went, Daily's webhooks say
ACCEPTED = "accepted"  # Daily took the request; its calltransfer webhooks tell how the person's leg went
HEARD_FROM = "calltransfer"  # `heard_from` of a `transferred` that Daily's webhook, not its answer, told
assert READ_SECONDS + WARM_SECONDS < WARM_TRANSFER_TIMEOUT_SECONDS


class _Session(Protocol):
    @property
    def machine(self) -> Machine: ...


class SessionReads(Protocol):
    """dispatcher/sessions/service.py's `SessionService`: a session as any replica reads it."""

    async def get(self, session_id: str) -> _Session | None: ...


class DailyTransfers:
    def __init__(self, rooms: DailyRooms, sessions: SessionReads, claims: FirstClaims,
                 targets: TransferTargets | None, timeline: Timeline | None, warm: DailyWarm | None = None,
                 warm_unready: Callable[[], str | None] | None = None, caller_id: str | None = None) -> None:
        self._rooms = rooms
        self._caller_id = caller_id  # DAILY_DIALOUT_CALLER_ID: the number a person handed a call to sees
        # The person dialled out into the room and briefed by the bot (daily_warm.py); with several regions, the
        # leg's webhooks that land elsewhere are relayed here (daily_hook_relay.py), once every region says it
        # relays them here (`warm_unready`: why not yet).
        self._warm = warm
        self._warm_unready = warm_unready
        self._sessions = sessions
        self._claims = claims
        self._targets = targets
        self._timeline = timeline
        self._phone_owner = Caller.named(PHONE_CALLER).owner_key

    async def transfer(self, session_id: str, target: TransferTarget) -> dict[str, Any] | None:
        """The transfer's answer; None when `session_id` is no Daily dial-in call (nothing asked of Daily)."""
        if not owned_by(session_id, self._phone_owner):
            return None
        reads = asyncio.timeout(READ_SECONDS)  # one deadline for the session, the claim and the presence
        try:
            async with reads:
                session = await self._sessions.get(session_id)
        except TimeoutError:
            raise _unread() from None
        if session is None or not session.machine.has_room:
            return None
        if target.mode == WARM and self._warm is None:
            raise ApiError(409, "warm_unsupported", "a Daily dial-in call is handed over warm only once the "
                           "dispatcher hears Daily's webhooks (dialout.answered tells the person picked up): set "
                           "DAILY_WEBHOOK_SECRET to the hmac of a Daily webhook pointed at /phone/daily/webhook; a "
                           "cold transfer (\"mode\": \"cold\") works meanwhile (docs/phone.md)")
        if target.mode == WARM and self._warm_unready is not None and (why := self._warm_unready()) is not None:
            raise ApiError(409, "warm_unsupported", f"a Daily dial-in call is not handed over warm yet: {why}, so "
                           "the person's answer could land where it is not relayed and be lost; nobody was called "
                           "and the caller is still with the bot. Deploy the same release and REGIONS to every "
                           "region; a cold transfer (\"mode\": \"cold\") works meanwhile (docs/phone.md)")
        check_allowed(self._targets, target)
        if not session.machine.state.is_active:
            raise ApiError(409, "call_over", "this session's call has ended")
        record = _Record(self._claims, session_id, TransferRecord(await self._claim(session_id, reads.when())))
        sending = False
        try:
            participant = await self._caller_in_room(session_id, reads.when())
            if self._warm is not None and target.mode == WARM:  # its leg stopped whatever fails: nothing unknown
                until = asyncio.get_running_loop().time() + WARM_SECONDS
                await self._warm.transfer(session_id, participant, target, until, record.note_leg)
                return self._transferred(session_id, target, WARM)
            async with asyncio.timeout(TRANSFER_SECONDS):
                sending = True  # from here, Daily may have the POST
                await self._rooms.sip_call_transfer(session_id, participant, target.to,
                                                    self._caller_id if self._shows_caller_id(target) else None)
        except TimeoutError:
            if sending:
                return await self._unanswered(session_id, target, record, "out of time")
            raise _unknown(session_id, "out of time") from None
        except DailyError as exc:
            if exc.reason == "daily_unavailable" and not exc.nothing_sent:  # the transfer's own: maybe acted on
                return await self._unanswered(session_id, target, record, str(exc))
            if sending and await record.heard():  # Daily's signed webhook said it took it: the refusal is a lost
                return self._transferred(session_id, target, ACCEPTED, heard=True)  # answer's echo, not its word
            await record.let_go()
            if isinstance(exc, DailyRefused) and exc.status == 400 and self._shows_caller_id(target):
                raise CallerIdRefused(session_id, exc, how="transfer (Daily's sipCallTransfer)") from None
            raise _refusal(exc, session_id) from None
        except LegNotStopped:  # the person's phone may ring: a retry must not ring a second one
            raise
        except asyncio.CancelledError:
            if not sending:
                await record.let_go()
            else:  # the POST may have reached Daily: never sent again, and the timeline says so
                await self._note_unknown(session_id, target, record)
            raise
        except BaseException:
            await record.let_go()
            raise
        return self._transferred(session_id, target, ACCEPTED)

    def _shows_caller_id(self, target: TransferTarget) -> bool:
        """Whether the transfer named DAILY_DIALOUT_CALLER_ID: a number called, with the setting set."""
        return self._caller_id is not None and not target.is_sip

    async def _claim(self, session_id: str, deadline: float | None) -> str:
        claim = secrets.token_hex(8)
        try:
            async with asyncio.timeout_at(deadline):
                first = await self._claims.first(record_key(session_id), claim, CLAIM_SECONDS)
        except TimeoutError:
            raise ApiError(503, "store_unavailable", "the replicas' store did not answer in time: cannot record the "
                           "transfer before Daily is asked; nothing was transferred, try again",
                           retry_after=2.0) from None
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "the replicas' store is unreachable: cannot record the "
                           "transfer before Daily is asked; nothing was transferred, try again",
                           retry_after=2.0) from None
        if first != claim:
            raise ApiError(409, "already_transferring", "this call is already being transferred (or was)")
        return claim

    async def _caller_in_room(self, session_id: str, deadline: float | None) -> str:
        """The caller's participant id: the room's one participant without a token's user (joined by SIP)."""
        try:
            async with asyncio.timeout_at(deadline):
                present = await self._rooms.presence(session_id)
        except TimeoutError:
            raise _unread() from None
        except DailyError as exc:
            raise _AskedNothing(exc) from exc
        callers = [entry["id"] for entry in present or () if _tokenless(entry)]
        if not callers:
            raise ApiError(409, "no_live_call", "the caller is not in the session's Daily room (Daily has not "
                           "connected the call yet, or the caller hung up): nothing was transferred")
        if len(callers) > 1:
            raise ApiError(409, "call_not_verified", f"the session's Daily room holds {len(callers)} participants "
                           "that joined without a token, where one caller's SIP leg was expected: nothing was "
                           "transferred")
        return str(callers[0])

    async def _unanswered(self, session_id: str, target: TransferTarget, record: _Record,
                          why: str) -> dict[str, Any]:
        """Daily answered neither way: taken, if its calltransfer webhook already said so; else `504`, the
        outcome written into the record for that webhook to settle."""
        if await record.settle_unknown(noted=False):
            return self._transferred(session_id, target, ACCEPTED, heard=True)
        raise _unknown(session_id, why)

    async def _note_unknown(self, session_id: str, target: TransferTarget, record: _Record) -> None:
        """The request was cancelled (a replica shutting down, a torn-down request) with the POST maybe at
        Daily: nobody is left to answer, so the timeline says `transferred` with its outcome unknown (Daily
        most likely acted on a request it had; its calltransfer webhooks settle it: daily_calltransfer.py),
        or accepted where one of them came first."""
        log.warning("daily dial-in %s: the transfer was cancelled while Daily may have had it: not sent again",
                    session_id)
        if await record.heard():  # one of Daily's webhooks came first: Daily took it
            self._transferred(session_id, target, ACCEPTED, heard=True)
            return
        # Noted (and pushed) before the record says so: a webhook that settles it meanwhile, at any replica, then
        # amends after it, so the timeline's last word is the settled one and one session.transferred goes.
        if self._timeline is not None:
            self._timeline.note(session_id, TRANSFERRED, at=round(time.time(), 3), to=target.to, mode=target.mode,
                                carrier=CARRIER, carrier_status=OUTCOME_UNKNOWN, outcome=OUTCOME_UNKNOWN)
        try:
            heard = await record.settle_unknown(noted=True)
        except asyncio.CancelledError:  # cancelled again: the timeline still says what is known
            heard = False
        if heard and self._timeline is not None:  # a webhook came first: its word after the unknown, not pushed
            self._timeline.amend(session_id, TRANSFERRED, at=round(time.time(), 3), to=target.to, mode=target.mode,
                                 carrier=CARRIER, carrier_status=ACCEPTED, heard_from=HEARD_FROM)

    def _transferred(self, session_id: str, target: TransferTarget, status: str,
                     heard: bool = False) -> dict[str, Any]:
        """`heard`: Daily's answer never came, its calltransfer webhook said it took the transfer."""
        at = round(time.time(), 3)
        if self._timeline is not None:
            self._timeline.note(session_id, TRANSFERRED, at=at, to=target.to, mode=target.mode, carrier=CARRIER,
                                carrier_status=status, heard_from=HEARD_FROM if heard else None)
        log.info("daily dial-in %s: transferred (%s, daily: %s%s)", session_id, target.mode, status,
                 ", told by its webhook" if heard else "")
        return {"session_id": session_id, "to": target.to, "mode": target.mode, "at": at, "carrier": CARRIER,
                "carrier_status": status, "status": TRANSFERRED}


class _Record:
    """The transfer's record in the replicas' store (daily_transfer_record.py), as this request last wrote it."""

    def __init__(self, claims: FirstClaims, session_id: str, record: TransferRecord) -> None:
        self._claims, self._session_id, self._key, self.record = claims, session_id, record_key(session_id), record

    async def note_leg(self, dial: str) -> None:
        """`dial` (the person's leg) written into the record; a store that does not answer only logs it."""
        noted = self.record.with_leg(dial)
        try:
            async with asyncio.timeout(READ_SECONDS):
                if await self._claims.swap(self._key, str(self.record), str(noted), CLAIM_SECONDS):
                    self.record = noted
        except (StoreUnavailable, TimeoutError):
            log.warning("daily dial-in %s: the person's leg (%s) was not recorded in the store", self._key, dial)

    async def let_go(self) -> None:
        """Nothing was transferred: the record forgotten, so that a new transfer may be asked. A record one of
        Daily's calltransfer webhooks marked heard is kept: Daily took that transfer, and its later webhooks
        (the person's answer, the end) settle against it."""
        try:
            await self._claims.let_go(self._key, str(self.record))
        except StoreUnavailable:
            log.warning("daily dial-in %s: the store did not forget the transfer that was not made: a new "
                        "one is refused until its record expires", self._session_id)

    async def heard(self) -> bool:
        """Whether one of Daily's calltransfer webhooks told of the transfer while the request was under way; a
        store that does not answer within SETTLE_SECONDS: False (what the request then notes is its own word)."""
        try:
            async with asyncio.timeout(SETTLE_SECONDS):
                return await self._held() == self.record.settled(Outcome.HEARD)
        except (StoreUnavailable, TimeoutError):
            return False

    async def settle_unknown(self, noted: bool) -> bool:
        """The outcome, unknown (`noted`: the timeline says so too), written into the record for Daily's
        calltransfer webhooks to settle; True when one of them came first: Daily took the transfer. A store that
        does not answer only logs it (a webhook then finds the bare claim, and settles nothing)."""
        unknown = self.record.settled(Outcome.UNKNOWN_NOTED if noted else Outcome.UNKNOWN_ANSWERED)
        try:
            async with asyncio.timeout(SETTLE_SECONDS):
                if await self._claims.swap(self._key, str(self.record), str(unknown), CLAIM_SECONDS):
                    self.record = unknown
                    return False
                return await self._held() == self.record.settled(Outcome.HEARD)
        except (StoreUnavailable, TimeoutError):
            log.warning("daily dial-in %s: the transfer's unknown outcome was not recorded in the store: Daily's "
                        "webhooks cannot settle it", self._key)
            return False

    async def _held(self) -> TransferRecord | None:
        value = await self._claims.held(self._key)
        return None if value is None else TransferRecord.parse(value)


def _tokenless(entry: dict[str, Any]) -> bool:
    """A participant that joined without a meeting token: Daily leaves its `userId` null or, as documented for
    a participant whose token set none, its own session id. Every token the dispatcher signs names another."""
    participant = entry.get("id")
    return isinstance(participant, str) and bool(participant) and entry.get("userId") in (None, participant)


class _AskedNothing(DailyError):
    """Reading the room failed: no transfer was asked of Daily."""

    def __init__(self, cause: DailyError) -> None:
        super().__init__(cause.reason, cause.message, retry_after=cause.retry_after, nothing_sent=True)


def _unknown(session_id: str, why: str) -> ApiError:
    """The transfer went unanswered: Daily may have acted on it, so it is never sent again (the claim is kept)."""
    log.warning("daily dial-in %s: the transfer went unanswered (%s)", session_id, why)
    return ApiError(504, "transfer_outcome_unknown", "Daily answered neither the transfer nor with a refusal: the "
                    "call may have been transferred. It is not sent again, and a new transfer of this call is "
                    "refused: once Daily's calltransfer webhook comes (DAILY_WEBHOOK_SECRET), the session's "
                    "timeline has `transferred` with `heard_from: calltransfer`; without it, Daily's dashboard "
                    "shows where the call went",
                    extra={"outcome": "unknown"})


def _refusal(exc: DailyError, session_id: str) -> ApiError:
    """Daily's refusal (or the room's read that failed) as this API's answer: nothing was transferred. Daily's
    own words are logged, never answered."""
    log.warning("daily dial-in %s: the transfer was not made: %s", session_id, exc)
    if isinstance(exc, DailyRefused):
        said = f"Daily answered {exc.status}" + (f" {exc.kind}" if exc.kind else "")
        if exc.status == 404:
            return ApiError(409, "call_over", f"Daily no longer has this call in the session's room ({said})")
        if exc.status in (401, 403):
            return ApiError(502, "carrier_refused", "Daily refused the dispatcher's credentials: check DAILY_API_KEY")
        return ApiError(502, "carrier_refused", f"Daily refused the transfer ({said}; the dispatcher's log has "
                        "Daily's message)")
    if exc.reason in ("daily_throttled", "daily_rate_limited"):
        return ApiError(503, "carrier_throttled", "Daily is throttling this account's API requests: nothing was "
                        "transferred, try again", retry_after=exc.retry_after or 1.0)
    return _unread(exc.retry_after)


def _unread(retry_after: float | None = None) -> ApiError:
    return ApiError(503, "carrier_unavailable", "Daily did not answer, or refused, a read of the session's room "
                    "(the dispatcher's log says which): nothing was transferred, try again",
                    retry_after=retry_after or 1.0)
