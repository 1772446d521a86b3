"""Who acts on a placed call first: a transfer to a person, or the carrier's answering-machine verdict (its
hang-up, or its hand-over to a fresh bot). Each would undo the other: a verdict's hang-up after a transfer
ends the call the callee now has with the person; a transfer after a verdict's hand-over takes the call from
the fresh bot. So each claims the call's one record before it changes the call, and the loser does nothing.

The record is the store's first claim (`FirstClaims`: set once, across every replica, since the carrier's
callback and the call's stream may be at two of them), kept `TURN_SECONDS`. A transfer
that did not happen gives the call back, so a later verdict may still act; a verdict whose change the
carrier refused gives it back too. A store that cannot say raises `StoreUnavailable` (never guessed).
"""

from __future__ import annotations

from typing import Literal

from dispatcher.store.coordination import FirstClaims

RECORD = "placed-turn:"  # + session id: who acted on the placed call first
# Both race only from the pickup until the verdict: the carrier decides within its detection timeout (Twilio's
# MachineDetectionTimeout: 30 s by default, under a minute at most), and a hand-over ends the first session's
# stream at once. An hour outlasts both, late callbacks included; a one-process store keeps fewer records.
TURN_SECONDS = 3600.0
Actor = Literal["transfer", "verdict"]


class PlacedTurns:
    def __init__(self, records: FirstClaims) -> None:
        self._records = records

    async def take(self, session_id: str, actor: Actor) -> bool:
        """Whether `actor` may change the call: it is the first to ask (or asks again)."""
        return await self._records.first(RECORD + session_id, actor, TURN_SECONDS) == actor

    async def give_back(self, session_id: str, actor: Actor) -> None:
        """`actor` changed nothing after all: the other may act."""
        await self._records.let_go(RECORD + session_id, actor)
