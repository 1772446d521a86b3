"""Daily's `calltransfer.*` webhooks of a Daily dial-in call handed to a person cold (daily_transfers.py), on the
session's timeline, at whichever replica they land (https://docs.daily.co/reference/rest-api/webhooks/events).

Daily documents four, and no failure event: `triggered` (the transfer API called and accepted), `initiated` (the
caller's leg connected to `to_endpoint`), `answered` (the person answered) and `completed` (the person's end hung
up). Each says Daily took the transfer, so each first settles an outcome the dispatcher never heard (no answer or a
5xx, answered 504; a request cancelled with the POST maybe at Daily, noted unknown), as the transfer's record in the
store says it: `transferred` accepted, `"heard_from": "calltransfer"`, noted where the timeline has none (its one
`session.transferred` webhook), amended where the timeline said unknown (that webhook went already: never a second).
Heard while the request is under way, the record says so, and the request answers accepted though Daily's own answer
never comes. Then `answered` notes `transfer_answered` (its `to`), `completed` `transfer_completed`, at Daily's
`timestamp`, each once per session (a mark in the store: Daily delivers at least once, in no set order).

An event is this deployment's when its room has the deployment's prefix, names a dial-in call's session, and the
store holds that transfer's record (every event keeps it a day, a timeline's life, so a long call's `completed` still
finds it); any other, or a malformed one, is ignored. A store that does not answer raises `StoreUnavailable`: the
route answers 503 and Daily sends it again. With several regions the route relays an event of another region's
session there first (daily_hook_relay.py): the record and the timeline are in the session's region."""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dispatcher.observability.log_text import shown
from dispatcher.phone.calls import PHONE_CALLER
from dispatcher.phone.daily_transfer_record import Outcome, TransferRecord, record_key
from dispatcher.phone.daily_transfers import ACCEPTED, CARRIER, HEARD_FROM
from dispatcher.phone.transfer_target import COLD
from dispatcher.sessions.ids import Caller, owned_by
from dispatcher.sessions.timeline import TRANSFER_ANSWERED, TRANSFER_COMPLETED, TRANSFERRED
from dispatcher.store.coordination import FirstClaims
from dispatcher.store.timelines import KEEP_SECONDS as TIMELINE_KEEP_SECONDS

log = logging.getLogger("dispatcher.phone")

TRIGGERED, INITIATED = "calltransfer.triggered", "calltransfer.initiated"
ANSWERED, COMPLETED = "calltransfer.answered", "calltransfer.completed"
NOTED = {ANSWERED: TRANSFER_ANSWERED, COMPLETED: TRANSFER_COMPLETED}  # what each notes once settled
KINDS = frozenset({TRIGGERED, INITIATED, *NOTED})
ONCE = "daily-calltransfer:"  # + session id + ":" + the event's type: noted once
KEPT_SECONDS = TIMELINE_KEEP_SECONDS  # the record and the marks: as long as a timeline is kept
ID_CHARS = 256  # Daily's ids are a few dozen characters
ENDPOINT_CHARS = 256
PHONE_OWNER = Caller.named(PHONE_CALLER).owner_key  # a dial-in call's session id is the phone caller's
TRIES = 3  # a record changed under this replica's swap (another event's, the request's) is read again


class CallTransferRooms(Protocol):
    """dispatcher/media/daily.py's `DailyRooms`: the session a room of this deployment's prefix is for."""

    def session_of(self, room: str) -> str | None: ...


class TransferTimeline(Protocol):
    """dispatcher/sessions/timeline.py's `SessionTimeline`."""

    def note(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None: ...

    def amend(self, session_id: str, event: str, *, at: float | None = None, **fields: Any) -> None: ...


@dataclass(frozen=True)
class CallTransferEvent:
    """One `calltransfer.*` webhook's fields that matter here."""
    type: str
    id: str
    session_id: str  # the voicefleet session whose room it names (Daily's `session_id` is the caller's SIP leg)
    at: float  # when it happened: the payload's `timestamp` (else the webhook's `event_ts`)
    to: str | None  # `to_endpoint`: the number or SIP URI the call went to

    @classmethod
    def read(cls, body: Mapping[str, Any], rooms: CallTransferRooms) -> CallTransferEvent | None:
        """None: no calltransfer event of a dial-in call's room of this deployment's prefix, or malformed."""
        kind, event_id, payload = body.get("type"), body.get("id"), body.get("payload")
        if kind not in KINDS or not isinstance(payload, dict):
            return None
        if payload.get("is_sip_refer") is True:  # a REFER: the dispatcher sends none (sipCallTransfer only), not ours
            return None
        if not (isinstance(event_id, str) and 0 < len(event_id) <= ID_CHARS):
            return None
        room = payload.get("room")
        session_id = rooms.session_of(room) if isinstance(room, str) else None
        if session_id is None or not owned_by(session_id, PHONE_OWNER):
            return None
        at = _seconds(payload.get("timestamp"))
        at = at if at is not None else _seconds(body.get("event_ts"))
        if at is None:
            return None
        to = payload.get("to_endpoint")
        return cls(str(kind), event_id, session_id, at,
                   to if isinstance(to, str) and 0 < len(to) <= ENDPOINT_CHARS else None)


class DailyCallTransfers:
    """Daily's verified calltransfer webhooks, settled against the transfer's record and noted on the timeline."""

    def __init__(self, rooms: CallTransferRooms, claims: FirstClaims, timeline: TransferTimeline) -> None:
        self._rooms, self._claims, self._timeline = rooms, claims, timeline

    def read(self, body: Mapping[str, Any]) -> CallTransferEvent | None:
        return CallTransferEvent.read(body, self._rooms)

    async def heard(self, event: CallTransferEvent) -> bool:
        """Whether `event` is a transfer this deployment's store made (acted on now, or already); False:
        ignored. `StoreUnavailable`: nothing more was done, and a retry finishes what this one began."""
        if not await self._settled(event):
            return False
        kind = NOTED.get(event.type)
        if kind is not None:
            mine = uuid.uuid4().hex
            if await self._claims.first(f"{ONCE}{event.session_id}:{event.type}", mine, KEPT_SECONDS) == mine:
                self._timeline.note(event.session_id, kind, at=event.at, carrier=CARRIER,
                                    to=event.to if kind == TRANSFER_ANSWERED else None)
        log.info("daily dial-in %s: %s (%s)", event.session_id, event.type, shown(event.id))
        return True

    async def _settled(self, event: CallTransferEvent) -> bool:
        """The transfer's record told that Daily took it: an unknown outcome settled to accepted (here, once:
        the store's swap), a request under way told so; False: no record, no transfer of this deployment's."""
        key = record_key(event.session_id)
        for _ in range(TRIES):
            value = await self._claims.held(key)
            if value is None:
                return False
            record = TransferRecord.parse(value)
            if record is not None and record.outcome in (Outcome.UNKNOWN_ANSWERED, Outcome.UNKNOWN_NOTED):
                settled = Outcome.RECONCILED
            elif record is not None and record.bare:  # the request under way, or Daily answered it
                settled = Outcome.HEARD
            else:  # settled already (or a warm transfer's leg, or a later release's): kept as long as its timeline
                await self._claims.keep(key, value, KEPT_SECONDS)
                return True
            if await self._claims.swap(key, value, str(record.settled(settled)), KEPT_SECONDS):
                if settled == Outcome.RECONCILED:
                    self._reconciled(event, noted=record.outcome == Outcome.UNKNOWN_NOTED)
                return True
        return True  # changed under each try: others act on it

    def _reconciled(self, event: CallTransferEvent, noted: bool) -> None:
        """`transferred` accepted, as Daily's webhook told it: amended where the timeline said it unknown (its
        `session.transferred` webhook went then), else noted (and pushed, once)."""
        log.info("daily dial-in %s: the transfer whose answer never came was taken (Daily's %s)", event.session_id,
                 event.type)
        record = self._timeline.amend if noted else self._timeline.note
        # Noted at Daily's own time, as its answer and hang-up are, so a late delivery lists in order; amended, at
        # its arrival: after the unknown it settles, which the request noted as it gave up.
        at = round(time.time(), 3) if noted else event.at
        record(event.session_id, TRANSFERRED, at=at, to=event.to, mode=COLD, carrier=CARRIER,
               carrier_status=ACCEPTED, heard_from=HEARD_FROM)


def _seconds(value: object) -> float | None:
    """Unix seconds from Daily's `timestamp` (documented an integer, sent as a string in its examples) or
    `event_ts`; a 13-digit value taken as milliseconds; None: none of these."""
    if isinstance(value, str):
        try:
            value = float(value) if value.isascii() else None  # float() takes other scripts' digits too
        except ValueError:  # signed by Daily, yet no number: no time, never a 500
            return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        return None
    return float(value) / 1000 if value > 1e11 else float(value)
