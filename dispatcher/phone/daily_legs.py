"""A Daily warm transfer's dial-out leg as the replicas' store holds it, whichever replica Daily's `dialout.*`
webhooks reach (https://docs.daily.co/reference/rest-api/webhooks/events): `dialout.answered` ("the remote end
answered the call") and the end of the leg (`dialout.stopped`, `dialout.error`), by the dial-out's `sessionId`.
`dialout.connected` says only that the phone rings: the leg is in the room then, so presence cannot tell an answer.

Daily delivers each event at least once and in no set order (a retry, a late `dialout.connected`), for every room
of the domain. So each leg's `userId` (a transfer's own, on every event) has two records, set before the dial-out:
PLACED proves the leg is this deployment's (kept long after the transfer), and the waiting mark says a replica
still acts on it (renewed every poll, lapsing WAITING_SECONDS after that replica is gone). At the bridge the
leg is BRIDGED: the call's, never stopped. An event whose user has no record here is kept nowhere (another
application's, another deployment's or another region's leg: docs/phone.md); a `dialout.connected` or
`dialout.answered` of a PLACED leg whose mark has lapsed is nobody's, and is stopped (`dialOut/stop`) once a
re-check a moment later finds it still so."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from botchannel.transfer import DAILY_PERSON_USER
from dispatcher.media.daily import DailyRooms
from dispatcher.store.coordination import FirstClaims
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.phone")

LEG = "daily-leg:"  # + the dial-out's sessionId + ":" + ANSWERED or ENDED
USER_KEY = "daily-leg-user:"  # + the transfer's userId: PLACED, then BRIDGED
WAITING_KEY = "daily-leg-waiting:"  # + the transfer's userId (known before the start)
KEPT_SECONDS = 120.0  # past a transfer's whole wait, and a late webhook's
# Past Daily's retries of an event and the signature's 300 s replay window: a late copy still finds the leg ours.
PLACED_SECONDS = 600.0
WAITING_SECONDS = 10.0  # the waiter's mark: above its longest single step (6 s) plus a poll; renewed every poll
SETTLE_SECONDS = 1.0  # a leg found nobody's is looked at again this much later before it is stopped
STOP_TRIES = 3  # a background stop Daily did not take, tried again after 1 s, then 2 s
ANSWERED, ENDED, WAITING = "answered", "ended", "waiting"
PLACED, BRIDGED = "placed", "bridged"
STARTED = frozenset({"dialout.connected", "dialout.answered"})  # the leg is in the room: someone must want it
ENDING = frozenset({"dialout.stopped", "dialout.error"})  # the leg is over (a warning ends nothing)
SESSION_CHARS = 128  # a dial-out's sessionId is a UUID; anything longer is no leg of ours

StopLeg = Callable[[str, str], Awaitable[bool]]  # (room, dial-out sessionId) → stopped


@dataclass(frozen=True)
class DialoutEvent:
    """One `dialout.*` webhook's fields that matter here (None: the body is no dial-out event)."""
    type: str
    dial: str  # the dial-out's `sessionId`: the person's participant id
    room: str
    user: str | None  # the start's `userId`, when Daily sends it back

    @classmethod
    def read(cls, body: Mapping[str, Any]) -> DialoutEvent | None:
        kind, payload = body.get("type"), body.get("payload")
        if not isinstance(kind, str) or not kind.startswith("dialout.") or not isinstance(payload, dict):
            return None
        dial, room, user = payload.get("session_id"), payload.get("room"), payload.get("user_id")
        if not (isinstance(dial, str) and 0 < len(dial) <= SESSION_CHARS and isinstance(room, str) and room):
            return None
        return cls(kind, dial, room, user if isinstance(user, str) else None)

    @property
    def transfers(self) -> bool:
        """Whether it is a warm transfer's leg (its `userId` is one `DailyWarm` gave)."""
        return self.user is not None and self.user.startswith(DAILY_PERSON_USER)


class DialoutLegs:
    """What Daily said of each leg, for the replica that waits on it; its records and waiting marks."""

    def __init__(self, records: FirstClaims) -> None:
        self._records = records

    async def heard(self, event: DialoutEvent) -> bool | None:
        """None: no leg of this deployment's here, nothing kept; else `event` kept, and whether its leg is
        nobody's and must be stopped. `StoreUnavailable`: nothing kept."""
        if not event.transfers or await self._records.held(USER_KEY + str(event.user)) is None:
            return None
        if event.type == "dialout.answered":
            await self._records.first(f"{LEG}{event.dial}:{ANSWERED}", ANSWERED, KEPT_SECONDS)
        elif event.type in ENDING:
            await self._records.first(f"{LEG}{event.dial}:{ENDED}", event.type, KEPT_SECONDS)
        return await self.unclaimed(event)

    async def unclaimed(self, event: DialoutEvent) -> bool:
        """Whether `event`'s leg is in the room, this deployment's, never bridged, and nobody waits on it."""
        if event.type not in STARTED or not event.transfers:
            return False
        user = str(event.user)
        if await self._records.held(USER_KEY + user) != PLACED:
            return False
        return await self._records.held(WAITING_KEY + user) is None

    async def answered(self, dial: str) -> bool:
        return await self._records.held(f"{LEG}{dial}:{ANSWERED}") is not None

    async def ended(self, dial: str) -> str | None:
        """The webhook that ended the leg (`dialout.stopped`, `dialout.error`), or None."""
        return await self._records.held(f"{LEG}{dial}:{ENDED}")

    async def place(self, user: str) -> None:
        """`user`'s leg recorded as this deployment's and waited on, before it is dialled (`StoreUnavailable`)."""
        await self._records.first(USER_KEY + user, PLACED, PLACED_SECONDS)
        await self.wait(user)

    async def wait(self, user: str) -> None:
        """The mark that a replica waits on the leg of `user`, set or renewed (`StoreUnavailable` raised)."""
        if not await self._records.keep(WAITING_KEY + user, WAITING, WAITING_SECONDS):
            await self._records.first(WAITING_KEY + user, WAITING, WAITING_SECONDS)
        await self._records.keep(USER_KEY + user, PLACED, PLACED_SECONDS)

    async def bridge(self, user: str) -> None:
        """`user`'s leg is the call's now: never stopped as nobody's (`StoreUnavailable` raised)."""
        await self._records.swap(USER_KEY + user, PLACED, BRIDGED, PLACED_SECONDS)

    async def done(self, user: str) -> None:
        """Nobody waits on `user`'s leg any more (a store that does not answer lets the mark expire); a leg
        still PLACED is then stopped by the next of its webhooks that lands."""
        try:
            await self._records.let_go(WAITING_KEY + user, WAITING)
        except StoreUnavailable:
            log.warning("daily: the store did not forget the wait on a transfer's leg: it lapses in %g s",
                        WAITING_SECONDS)


class DailyHooks:
    """Daily's verified webhooks acted on: kept for the waiting replica, a leg nobody waits on stopped."""

    def __init__(self, legs: DialoutLegs, stop_leg: StopLeg, *, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.legs, self._stop_leg, self._settle = legs, stop_leg, settle_seconds
        self._stopping: set[asyncio.Task[None]] = set()

    async def heard(self, body: Mapping[str, Any]) -> DialoutEvent | None:
        """A verified body's dial-out event of this deployment's, kept (`StoreUnavailable`: nothing was); None:
        not one, ignored. A leg nobody waits on is stopped in the background (Daily waits on no one)."""
        event = DialoutEvent.read(body)
        if event is None:
            return None
        verdict = await self.legs.heard(event)
        if verdict is None:
            return None
        if verdict:
            task = asyncio.create_task(self._stop(event))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        return event

    async def _stop(self, event: DialoutEvent) -> None:
        """The leg stopped if it is still nobody's after a moment (a waiter held up renews its mark then), tried
        STOP_TRIES times with backoff; a failure is said in the log, never raised."""
        await asyncio.sleep(self._settle)
        try:
            if not await self.legs.unclaimed(event):
                return
        except StoreUnavailable:
            log.warning("daily room %s: the store did not answer: the call to the person (%s) is left as it is",
                        event.room, event.dial)
            return
        log.warning("daily room %s: a warm transfer's call to the person (%s) is nobody's (the replica that placed "
                    "it stopped waiting): ending it", event.room, event.dial)
        wait = 1.0
        for attempt in range(1, STOP_TRIES + 1):
            try:
                await self._stop_leg(event.room, event.dial)
                return
            except Exception as exc:  # noqa: BLE001 - a background clean-up: said in the log, never raised
                log.warning("daily room %s: ending the call to the person (%s) failed (try %d of %d): %s",
                            event.room, event.dial, attempt, STOP_TRIES, exc)
            if attempt < STOP_TRIES:
                await asyncio.sleep(wait)
                wait *= 2


def stop_in_room(rooms: DailyRooms, seconds: float) -> StopLeg:
    """`StopLeg` through the dispatcher's Daily client: a room this deployment does not name is left alone."""
    async def stop(room: str, dial: str) -> bool:
        session_id = rooms.session_of(room)
        if session_id is None:
            return False
        async with asyncio.timeout(seconds):
            return await rooms.dial_out_stop(session_id, dial)

    return stop
