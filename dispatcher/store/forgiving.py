"""What a replica does when the store does not answer: what one process would. One policy, here.

Every store call that can be forgiven goes through `forgiving`: the store's answer, or, when the
store does not answer within `REDIS_TIMEOUT_SECONDS` (dispatcher/store/client.py marks it
unreachable for `/healthz`), the answer of the one-process implementation
(dispatcher/store/local.py, memory.py): a claim is granted, a hello admitted on this replica's
own record, a rate or a count kept by this replica, a token spent in its memory, a session's
values held in its memory. docs/replicas.md lists what that costs. The keyed start's lease,
finding another replica's bot and a lost create's question whether its session was started again
(`Timelines.read_shared`) are never forgiven (dispatcher/store/coordination.py says why).

The adapters below pair each of the store's records with its one-process counterpart.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from dispatcher.observability.log_text import shown
from dispatcher.store.claims import BotClaims
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import (
    RETIRING,
    Claims,
    CreateLimit,
    CreateTurn,
    CredentialCounts,
    LinkAdmission,
    OneTimeUse,
    OwnerRecords,
    Rate,
    ReplicaPool,
    ReservePool,
    SessionValues,
)
from dispatcher.store.owners import Owners
from dispatcher.store.pool import StorePool
from dispatcher.store.secrets_vault import StoreVault
from dispatcher.store.spent import SpentOnce

log = logging.getLogger("dispatcher.store.forgiving")
T = TypeVar("T")

# Reading a cold session's values back for its bot, from a store that blinked.
READ_RETRY_DELAYS_SECONDS = (0.25, 1.0, 3.0)


async def forgiving(
    shared: Callable[[], Awaitable[T]], alone: Callable[[], Awaitable[T]], what: str,
    *, retries: tuple[float, ...] = (),
) -> T:
    """The store's answer; asked again after each of `retries` (seconds); else `alone`'s."""
    for delay in (*retries, None):
        try:
            return await shared()
        except StoreUnavailable:
            if delay is None:
                break
            await asyncio.sleep(delay)
    log.info("%s: the store did not answer; this replica decides alone", what)
    return await alone()


async def nothing() -> None:
    """One process's answer where there is nothing to record."""


class ForgivingClaims:
    def __init__(self, claims: BotClaims, alone: Claims) -> None:
        self._claims = claims
        self._alone = alone

    async def claim(self, bot_id: str, session_id: str, until: int | None = None) -> bool:
        return await forgiving(lambda: self._claims.claim(bot_id, session_id, until),
                               lambda: self._alone.claim(bot_id, session_id, until), f"claim of bot {shown(bot_id)}")

    async def unclaim(self, bot_id: str, session_id: str) -> None:
        await forgiving(lambda: self._claims.unclaim(bot_id, session_id),
                        lambda: self._alone.unclaim(bot_id, session_id), f"unclaim of bot {shown(bot_id)}")

    async def claimed_for(self, bot_id: str) -> str | None:
        return await forgiving(lambda: self._claims.claimed_for(bot_id), lambda: self._alone.claimed_for(bot_id),
                               f"claim record of bot {shown(bot_id)}")

    async def retiring(self, bot_id: str) -> bool:
        # Not forgiven (raises StoreUnavailable): the replica holding the bot grants its own claims meanwhile, so
        # one process's yes here would stop a machine that replica gave a session; the retirement waits instead.
        return await self._claims.claim(bot_id, RETIRING)

    async def first_idle_hello(self, bot_id: str, expires: int) -> bool:
        return await forgiving(lambda: self._claims.admit_once(bot_id, expires),
                               lambda: self._alone.first_idle_hello(bot_id, expires),
                               f"idle hello of bot {shown(bot_id)}")

    async def record_hello(self, bot_id: str) -> None:
        await forgiving(lambda: self._claims.hello(bot_id), lambda: self._alone.record_hello(bot_id),
                        f"hello record of bot {shown(bot_id)}")

    async def greeted(self, bot_ids: list[str]) -> set[str]:
        return await forgiving(lambda: self._claims.greeted(bot_ids), lambda: self._alone.greeted(bot_ids),
                               "hellos at other replicas")

    async def claimed_among(self, bot_ids: list[str]) -> set[str]:
        return await forgiving(lambda: self._claims.claimed_among(bot_ids),
                               lambda: self._alone.claimed_among(bot_ids), "claims at other replicas")

    async def expect_back(self, bot_id: str, waiter: str, seconds: float) -> None:
        await forgiving(lambda: self._claims.expect_back(bot_id, waiter, seconds),
                        lambda: self._alone.expect_back(bot_id, waiter, seconds), f"thaw of bot {shown(bot_id)}")

    async def welcome_back(self, bot_id: str) -> str | None:
        return await forgiving(lambda: self._claims.welcome_back(bot_id), lambda: self._alone.welcome_back(bot_id),
                               f"return of bot {shown(bot_id)}")

    async def admit_link(self, machine_id: str, presented: str | None, new: str, hold_seconds: float,
                         key_seconds: float) -> LinkAdmission:
        # Not forgiven (raises StoreUnavailable): one process's yes at each replica would let a copy of a
        # pool pod's token be a second channel for its session; the channel says what that means.
        return await self._claims.admit_link(machine_id, presented, new, hold_seconds, key_seconds)

    async def keep_link(self, machine_id: str, key: str, hold_seconds: float, key_seconds: float) -> bool:
        return await self._claims.keep_link(machine_id, key, hold_seconds, key_seconds)  # not forgiven either

    async def let_go_link(self, machine_id: str) -> None:
        await forgiving(lambda: self._claims.let_go_link(machine_id), lambda: self._alone.let_go_link(machine_id),
                        f"channel of bot {shown(machine_id)}")


class ForgivingOwners:
    """Owner records left to the heartbeat, which writes them again once the store is back."""

    def __init__(self, owners: Owners, alone: OwnerRecords) -> None:
        self._owners = owners
        self._alone = alone

    async def claim(self, session_id: str) -> None:
        await forgiving(lambda: self._owners.claim(session_id), lambda: self._alone.claim(session_id),
                        f"session {session_id}'s owner record")

    async def reclaim(self, session_id: str) -> None:
        await forgiving(lambda: self._owners.reclaim(session_id), lambda: self._alone.reclaim(session_id),
                        f"session {session_id}'s owner record")

    async def release(self, session_id: str) -> None:
        await forgiving(lambda: self._owners.release(session_id), lambda: self._alone.release(session_id),
                        f"session {session_id}'s owner release")

    async def holder(self, session_id: str) -> str | None:
        return await self._owners.owner_of(session_id)  # not forgiven (raises StoreUnavailable): coordination.py


class ForgivingRate:
    def __init__(self, shared: Rate, alone: Rate) -> None:
        self._shared = shared
        self._alone = alone

    async def take(self, caller: str) -> float:
        return await forgiving(lambda: self._shared.take(caller), lambda: self._alone.take(caller), "per-key rate")


class ForgivingCreateLimit:
    """The deployment's create limit; while the store does not answer, this replica's own count."""

    def __init__(self, shared: CreateLimit, alone: CreateLimit) -> None:
        self._shared = shared
        self._alone = alone

    async def cold(self, max_wait: float, ticket: str = "") -> CreateTurn:
        return await forgiving(lambda: self._shared.cold(max_wait, ticket), lambda: self._alone.cold(max_wait, ticket),
                               "create limit")

    async def refill(self) -> CreateTurn:
        return await forgiving(self._shared.refill, self._alone.refill, "create limit")

    async def look(self) -> CreateTurn:
        return await forgiving(self._shared.look, self._alone.look, "create limit")

    async def shared(self, holder: str, max_wait: float, ticket: str = "") -> CreateTurn:
        return await forgiving(lambda: self._shared.shared(holder, max_wait, ticket),
                               lambda: self._alone.shared(holder, max_wait, ticket), "create limit")

    async def turn_of(self, what: str, keep_seconds: float, longest: float = math.inf) -> CreateTurn:
        return await forgiving(lambda: self._shared.turn_of(what, keep_seconds, longest),
                               lambda: self._alone.turn_of(what, keep_seconds, longest), "create limit")

    # Each count gives back what it gave (a turn taken during an outage is this replica's own).
    async def give_back(self, ticket: str, holder: str | None = None) -> None:
        await self._alone.give_back(ticket, holder)
        await forgiving(lambda: self._shared.give_back(ticket, holder), nothing, "pace turn given back")

    async def give_back_turn(self, what: str) -> None:
        await self._alone.give_back_turn(what)
        await forgiving(lambda: self._shared.give_back_turn(what), nothing, "pace turn given back")


class ForgivingCounts:
    def __init__(self, shared: CredentialCounts, alone: CredentialCounts) -> None:
        self._shared = shared
        self._alone = alone

    async def take(self, caller: str, handle: str, now: float, expires: float, bound: int) -> float:
        return await forgiving(lambda: self._shared.take(caller, handle, now, expires, bound),
                               lambda: self._alone.take(caller, handle, now, expires, bound), "credential count")

    async def give_back(self, caller: str, handle: str) -> None:
        await self._alone.give_back(caller, handle)  # it may have been counted here during an outage
        await forgiving(lambda: self._shared.give_back(caller, handle), nothing, "credential given back")


class ForgivingOnce:
    """A token the store cannot vouch for is checked against this replica's memory (which sees every
    token shown here): a replay here is still refused; one at another replica names the same
    session, never a second machine."""

    def __init__(self, shared: SpentOnce, alone: OneTimeUse) -> None:
        self._shared = shared
        self._alone = alone

    async def first_use(self, what: str, seconds: float) -> bool:
        # This replica's memory records every token it is shown, the store answering or not: one
        # admitted here while the store answered stays refused here once it stops answering.
        if not await self._alone.first_use(what, seconds):
            return False

        async def first_here() -> bool:
            return True

        return await forgiving(lambda: self._shared.first_use(what, seconds), first_here,
                               f"one-time token {shown(what)}")


class ForgivingValues:
    """Sealed in the store, so any replica's hello can have them; in this replica's memory when the
    store does not take them (only a hello that reaches this replica gets them then)."""

    def __init__(self, shared: StoreVault, alone: SessionValues) -> None:
        self._shared = shared
        self._alone = alone

    async def put(self, session_id: str, values: Mapping[str, Any], ttl_seconds: float) -> None:
        await forgiving(lambda: self._shared.put(session_id, values, ttl_seconds),
                        lambda: self._alone.put(session_id, values, ttl_seconds), f"session {session_id}'s values")

    async def get(self, session_id: str) -> dict[str, Any] | None:
        return await self._read(session_id, ())

    async def read(self, session_id: str) -> dict[str, Any] | None:
        return await self._read(session_id, READ_RETRY_DELAYS_SECONDS)

    async def _read(self, session_id: str, retries: tuple[float, ...]) -> dict[str, Any] | None:
        if (values := await self._alone.get(session_id)) is not None:  # held here during an outage
            return values
        return await forgiving(lambda: self._shared.get(session_id), lambda: self._alone.get(session_id),
                               f"session {session_id}'s values", retries=retries)

    async def delete(self, session_id: str) -> None:
        await self._alone.delete(session_id)
        # Else they stay sealed in the store until they expire.
        await forgiving(lambda: self._shared.delete(session_id), nothing, f"session {session_id}'s values")


class ForgivingPool:
    """The deployment's reserve in the store; this replica's own bots and starts when the store
    does not answer: it then plans for what it holds, as one process would (so N replicas hold N
    reserves until the store is back). Its own view and state are always kept here too."""

    def __init__(self, shared: StorePool, alone: ReservePool) -> None:
        self._shared = shared
        self._alone = alone

    async def publish(self, view: ReplicaPool) -> None:
        await self._alone.publish(view)
        await forgiving(lambda: self._shared.publish(view), nothing, "the reserve's record")

    async def views(self) -> list[ReplicaPool]:
        return await forgiving(self._shared.views, self._alone.views, "the deployment's reserve")

    async def withdraw(self) -> None:
        await self._alone.withdraw()
        await forgiving(self._shared.withdraw, nothing, "the reserve's record")

    async def arrived(self, epoch: float, *, cold: bool) -> None:
        await forgiving(lambda: self._shared.arrived(epoch, cold=cold),
                        lambda: self._alone.arrived(epoch, cold=cold), "a start's record")

    async def arrivals(self) -> list[tuple[float, bool]]:
        held_here = await self._alone.arrivals()  # counted here while the store was away

        async def none() -> list[tuple[float, bool]]:
            return []

        return sorted(held_here + await forgiving(self._shared.arrivals, none, "the deployment's starts"))

    async def plan_lease(self) -> bool:
        return await forgiving(self._shared.plan_lease, self._alone.plan_lease, "the planning lease")

    async def plan_lease_in_store(self) -> bool:
        try:
            return await self._shared.plan_lease()
        except StoreUnavailable:
            return False  # not held: the stand-in lease above is this replica's alone

    async def let_go(self) -> None:
        await forgiving(self._shared.let_go, nothing, "the planning lease")

    async def save(self, state: Mapping[str, Any]) -> None:
        await self._alone.save(state)
        await forgiving(lambda: self._shared.save(state), nothing, "the planner's state")

    async def load(self) -> dict[str, Any] | None:
        return await forgiving(self._shared.load, self._alone.load, "the planner's state")

    async def started_cold(self, seconds: float) -> None:
        await self._alone.started_cold(seconds)  # this replica's own, should the store be away later
        await forgiving(lambda: self._shared.started_cold(seconds), nothing, "a cold start's record")

    async def cold_starts(self) -> list[float]:
        return await forgiving(self._shared.cold_starts, self._alone.cold_starts, "the measured cold starts")
