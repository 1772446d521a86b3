"""A Daily warm transfer's dial-out leg as the replicas' store holds it, whichever replica Daily's `dialout.*`
webhooks reach (https://docs.daily.co/reference/rest-api/webhooks/events): `dialout.answered` ("the remote end
answered the call") and the end of the leg (`dialout.stopped`, `dialout.error`), by the dial-out's `sessionId`.
`dialout.connected` says only that the phone rings: the leg is in the room then, so presence cannot tell an answer.

The replica that dials marks the transfer's own `userId` as waiting before the start and renews the mark while it
waits; a `dialout.connected` / `dialout.answered` of a transfer's leg that finds no mark (that replica was killed,
or gave a lost start up) is nobody's: it is stopped by whichever replica heard it (`dialOut/stop`)."""

from __future__ import annotations

import asyncio
import contextlib
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
WAITING_KEY = "daily-leg-waiting:"  # + the transfer's userId (known before the start)
KEPT_SECONDS = 120.0  # past a transfer's whole wait, and a late webhook's
WAITING_SECONDS = 5.0  # the waiter's mark, renewed every poll: a replica silent this long waits no more
ANSWERED, ENDED, WAITING = "answered", "ended", "waiting"
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
    """What Daily said of each leg, for the replica that waits on it; its waiting marks."""

    def __init__(self, records: FirstClaims) -> None:
        self._records = records

    async def heard(self, event: DialoutEvent) -> bool:
        """`event` kept; whether its leg is nobody's and must be stopped. `StoreUnavailable`: nothing kept."""
        if event.type == "dialout.answered":
            await self._records.first(f"{LEG}{event.dial}:{ANSWERED}", ANSWERED, KEPT_SECONDS)
        elif event.type in ENDING:
            await self._records.first(f"{LEG}{event.dial}:{ENDED}", event.type, KEPT_SECONDS)
        if event.type not in STARTED or not event.transfers:
            return False
        return await self._records.held(WAITING_KEY + str(event.user)) is None

    async def answered(self, dial: str) -> bool:
        return await self._records.held(f"{LEG}{dial}:{ANSWERED}") is not None

    async def ended(self, dial: str) -> str | None:
        """The webhook that ended the leg (`dialout.stopped`, `dialout.error`), or None."""
        return await self._records.held(f"{LEG}{dial}:{ENDED}")

    async def wait(self, user: str) -> None:
        """The mark that a replica waits on the leg of `user`, set or renewed (`StoreUnavailable` raised)."""
        if not await self._records.keep(WAITING_KEY + user, WAITING, WAITING_SECONDS):
            await self._records.first(WAITING_KEY + user, WAITING, WAITING_SECONDS)

    async def done(self, user: str) -> None:
        """Nobody waits on `user`'s leg any more (a store that does not answer lets the mark expire)."""
        with contextlib.suppress(StoreUnavailable):
            await self._records.let_go(WAITING_KEY + user, WAITING)


class DailyHooks:
    """Daily's verified webhooks acted on: kept for the waiting replica, a leg nobody waits on stopped."""

    def __init__(self, legs: DialoutLegs, stop_leg: StopLeg) -> None:
        self.legs, self._stop_leg = legs, stop_leg
        self._stopping: set[asyncio.Task[None]] = set()

    async def heard(self, body: Mapping[str, Any]) -> DialoutEvent | None:
        """A verified body's dial-out event, kept (`StoreUnavailable`: nothing was); None: not one of Daily's
        dial-out events, ignored. A leg nobody waits on is stopped in the background (Daily waits on no one)."""
        event = DialoutEvent.read(body)
        if event is None:
            return None
        if await self.legs.heard(event):
            task = asyncio.create_task(self._stop(event))
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)
        return event

    async def _stop(self, event: DialoutEvent) -> None:
        log.warning("daily room %s: a warm transfer's call to the person (%s) is nobody's (the replica that placed "
                    "it stopped waiting): ending it", event.room, event.dial)
        try:
            await self._stop_leg(event.room, event.dial)
        except Exception as exc:  # noqa: BLE001 - a background clean-up: said in the log, never raised
            log.warning("daily room %s: ending the call to the person (%s) failed: %s", event.room, event.dial, exc)


def stop_in_room(rooms: DailyRooms, seconds: float) -> StopLeg:
    """`StopLeg` through the dispatcher's Daily client: a room this deployment does not name is left alone."""
    async def stop(room: str, dial: str) -> bool:
        session_id = rooms.session_of(room)
        if session_id is None:
            return False
        async with asyncio.timeout(seconds):
            return await rooms.dial_out_stop(session_id, dial)

    return stop
