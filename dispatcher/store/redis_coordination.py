"""Several replicas sharing a Valkey/Redis store (`REDIS_URL`): the coordination contract
(dispatcher/store/coordination.py) on one connection, and this replica's heartbeat.

Each of the contract's parts is the store's record (one module each in dispatcher/store/) paired
with the one-process counterpart it falls back on when the store does not answer
(dispatcher/store/forgiving.py). The start lease, `ask_owner`, `ask_call` and webhook sightings are the store's alone.

The heartbeat (every third of a lease) tells the other replicas this one is serving or draining
and renews the owner records of the sessions whose bots hold a channel here; a record that ran out
while the store was unreachable is written again. The heartbeat is also how an outage is noticed
and its end: `/healthz` shows the store's health as the last call found it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client.registry import Collector

from dispatcher.store.audit_trail import StoreTrail
from dispatcher.store.call_lines import RedisCallMedia
from dispatcher.store.call_media import CallMediaRecords
from dispatcher.store.claims import BotClaims
from dispatcher.store.client import Store, StoreSettings, StoreUnavailable
from dispatcher.store.coordination import (
    AuditTrail,
    CallMedia,
    Claims,
    CreateLimit,
    CredentialCounts,
    FirstClaims,
    HeldPlaces,
    KeySessions,
    Launches,
    OneTimeUse,
    OwnerRecords,
    Rate,
    ReleasableOnce,
    ReleaseBook,
    ReleaseSamples,
    ReservePool,
    RuntimeBook,
    SessionIndex,
    SessionsCensus,
    SessionValues,
    StartLease,
    StrandedClaims,
    Timelines,
    Turns,
    WeightedRate,
)
from dispatcher.store.credential_counts import SharedCredentialCounts
from dispatcher.store.first_claims import StoreFirstClaims
from dispatcher.store.forgiving import (
    ForgivingClaims,
    ForgivingCounts,
    ForgivingCreateLimit,
    ForgivingOnce,
    ForgivingOwners,
    ForgivingPool,
    ForgivingRate,
    ForgivingValues,
)
from dispatcher.store.held_places import HeldPlaceRecords
from dispatcher.store.key_sessions import ForgivingKeySessions, LocalKeySessions, SharedKeySessions
from dispatcher.store.launches import RedisLaunches, SharedLaunches
from dispatcher.store.leases import Leases
from dispatcher.store.local import LocalCallMedia, LocalClaims, LocalOwners
from dispatcher.store.media_bus import MediaBus
from dispatcher.store.memory import (
    LocalCreateLimit,
    LocalCredentialCounts,
    LocalLaunches,
    LocalOnce,
    LocalPool,
    LocalRate,
)
from dispatcher.store.message_seal import MessageSeal
from dispatcher.store.owners import Owners
from dispatcher.store.pool import StorePool
from dispatcher.store.rates import SharedCreateLimit, SharedRate
from dispatcher.store.relay import Handler, NotHere, Relay
from dispatcher.store.release_book import StoreReleaseBook
from dispatcher.store.release_samples import StoreReleaseSamples
from dispatcher.store.replicas import Replicas, State
from dispatcher.store.runtime_book import StoreRuntimeBook
from dispatcher.store.secrets_vault import MemoryVault, StoreVault
from dispatcher.store.session_index import ForgivingSessionIndex, MemorySessionIndex, StoreSessionIndex
from dispatcher.store.sessions_census import StoreCensus
from dispatcher.store.spent import Remembered, SpentOnce
from dispatcher.store.starts import StartLeases
from dispatcher.store.stranded_claims import StoreStrandedClaims
from dispatcher.store.timelines import ForgivingTimelines, MemoryTimelines, StoreTimelines
from dispatcher.store.turns import StoreTurns
from dispatcher.store.weighted_rates import ForgivingWeightedRate, LocalWeightedRate, SharedWeightedRate
from dispatcher.store.whatsapp_book import (
    ForgivingWhatsAppBook,
    MemoryWhatsAppBook,
    StoreWhatsAppBook,
    WhatsAppBook,
)

log = logging.getLogger("dispatcher.store")


class RedisCoordination:
    def __init__(self, settings: StoreSettings) -> None:
        self.store = Store(settings)
        self.replica_id = self.store.replica_id
        leases = Leases(self.store)
        self.starts: StartLease = StartLeases(self.store, leases)
        self.owner_records = Owners(self.store, leases)
        self.owners: OwnerRecords = ForgivingOwners(self.owner_records, LocalOwners())
        self.replicas = Replicas(self.store)
        bot_claims = BotClaims(self.store)
        self.claims: Claims = ForgivingClaims(bot_claims, LocalClaims())
        self.stranded_claims: StrandedClaims = StoreStrandedClaims(self.store, leases, bot_claims)  # not forgiven
        self.spent: OneTimeUse = ForgivingOnce(SpentOnce(self.store), LocalOnce())
        self.turns: Turns = StoreTurns(self.store)
        self.sessions_census: SessionsCensus = StoreCensus(self.store)
        # A webhook seen anywhere is seen everywhere, or refused: this replica's memory alone would
        # let one captured webhook mint a call token at each replica while the store is down.
        # Kept in this replica's memory too: a record deleted from the store re-opens nothing here.
        self.webhooks: ReleasableOnce = Remembered(SpentOnce(self.store), LocalOnce())
        # A bot's identity proof is admitted once anywhere. While the store is down, this replica's
        # memory still refuses a replay here; refusing every hello instead would cut every bot off.
        self.identity_proofs: OneTimeUse = ForgivingOnce(SpentOnce(self.store), LocalOnce())
        # Which region holds a key this region is home to: the store's word or none (a guess could
        # start one key's session twice).
        self.key_holders: FirstClaims = StoreFirstClaims(self.store)
        # Phone calls whose two sockets are at two replicas: the call's record, its frames.
        self.call_records = CallMediaRecords(self.store)
        # What the replicas say to each other, signed; during a change of secret the other one opens too.
        self.seal = MessageSeal(settings.message_secret, accepted=settings.accepted_message_secret or None)
        self.media = MediaBus(self.store, self.seal)
        self.calls: CallMedia = RedisCallMedia(self.call_records, self.media, LocalCallMedia(self.replica_id))
        self.pool: ReservePool = ForgivingPool(StorePool(self.store, leases), LocalPool())
        self.timelines: Timelines = ForgivingTimelines(StoreTimelines(self.store, self.seal), MemoryTimelines())
        self.session_index: SessionIndex = ForgivingSessionIndex(StoreSessionIndex(self.store, self.seal),
                                                                 MemorySessionIndex())
        self.key_sessions: KeySessions = ForgivingKeySessions(SharedKeySessions(self.store), LocalKeySessions())
        self.held_places: HeldPlaces = HeldPlaceRecords(SharedKeySessions(self.store))  # not forgiven
        self.releases: ReleaseBook = StoreReleaseBook(self.store)
        self.session_audit: AuditTrail = StoreTrail(self.store, "audit", "sessions")
        self.release_samples: ReleaseSamples = StoreReleaseSamples(self.store)
        self.runtime_book = StoreRuntimeBook(self.store)
        self.runtime: RuntimeBook = self.runtime_book
        self.whatsapp_calls: WhatsAppBook = ForgivingWhatsAppBook(StoreWhatsAppBook(self.store, self.seal),
                                                                  MemoryWhatsAppBook())
        self.relay: Relay | None = None
        self.state: State = "serving"
        self._held: Callable[[], Iterable[str]] = tuple
        self._beating: asyncio.Task[None] | None = None
        self._create_limits: dict[str, tuple[LocalCreateLimit, CreateLimit]] = {}

    async def ask_owner(
        self, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        """The answer of the replica holding `session_id`'s bot; None when no other replica holds
        it (or the one named no longer does). Raises `StoreUnavailable`, or `TimeoutError` when the
        owner does not answer: each caller says what that means to its own client."""
        return await self._ask_holder(await self.owner_records.owner_of(session_id), session_id, method, params,
                                      timeout)

    async def ask_call(
        self, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        """The answer of the replica holding `session_id`'s call (its media record, written when the call's
        stream opened, released when it closed, a lease meanwhile); None when no other replica holds it.

        `timeout` bounds the whole ask, the record's look-up and the send included, so the answer comes
        within it however slow the store. Raises `StoreUnavailable` only while nothing was sent (the
        look-up failed); once the request may have been published (a PUBLISH whose reply was lost or
        late still ran in the store and reached that replica), a failure is a `TimeoutError`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            async with asyncio.timeout_at(deadline):
                holder = await self.call_records.replica_of(session_id)
        except TimeoutError:
            raise StoreUnavailable(f"the call's record was not read within {timeout:g}s") from None
        left = deadline - loop.time()
        if left <= 0:
            raise StoreUnavailable(f"the call's record was not read within {timeout:g}s")
        try:
            async with asyncio.timeout_at(deadline):
                return await self._ask_holder(holder, session_id, method, params, left)
        except StoreUnavailable as exc:
            raise TimeoutError(f"the request may have been sent, but the store did not confirm it: {exc}") from exc

    async def _ask_holder(self, holder: str | None, session_id: str, method: str, params: Mapping[str, Any],
                          timeout: float) -> Mapping[str, Any] | None:
        """`holder`'s answer; None when there is none, it is this replica, or it no longer holds the session."""
        if holder is None or holder == self.replica_id or self.relay is None:
            return None
        try:
            return await self.relay.ask(holder, session_id, method, params, timeout)
        except NotHere:
            return None

    async def ask_replica(
        self, replica_id: str, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        if replica_id == self.replica_id or self.relay is None:
            return None
        return await self.relay.ask(replica_id, session_id, method, params, timeout)

    def launches(self, keep_seconds: float) -> Launches:
        return RedisLaunches(SharedLaunches(self.store, keep_seconds), LocalLaunches())

    def start_rate(self, per_second: float, burst: int) -> Rate:
        return ForgivingRate(SharedRate(self.store, per_second, burst), LocalRate(per_second, burst))

    def weighted_rate(self, name: str, per_second: float, burst: int) -> WeightedRate:
        return ForgivingWeightedRate(SharedWeightedRate(self.store, name, per_second, burst),
                                     LocalWeightedRate(per_second, burst))

    def create_limit(self, name: str, per_second: float, burst: int) -> CreateLimit:
        # One per limit, named without its rate: replicas with another rate (mid-rollout, or a trunk's `cps`
        # read anew) take turns from the same bucket, each refilling it at its own. The fallback count is
        # this replica's.
        held = self._create_limits.get(name)
        if held is None or (held[0].per_second, held[0].burst) != (per_second, burst):
            alone = LocalCreateLimit(per_second, burst) if held is None else held[0].retuned(per_second, burst)
            held = alone, ForgivingCreateLimit(SharedCreateLimit(self.store, name, per_second, burst), alone)
            self._create_limits[name] = held
        return held[1]

    def turn_credentials(self) -> CredentialCounts:
        return ForgivingCounts(SharedCredentialCounts(self.store), LocalCredentialCounts())

    def session_values(self, sealing_key: bytes) -> SessionValues:
        return ForgivingValues(StoreVault(self.store, sealing_key), MemoryVault())

    async def start(self, handler: Handler, held: Callable[[], Iterable[str]]) -> None:
        """Subscribes to this replica's relay channel and starts the heartbeat. `handler` answers
        relayed requests from the local channel; `held()` names the sessions whose bots are here."""
        self._held = held
        self.relay = Relay(self.store, handler, self.seal)
        await self.relay.start()
        await self.beat()
        self._beating = asyncio.create_task(self._run(), name="store-heartbeat")

    async def beat(self) -> None:
        """One heartbeat; never raises (an unreachable store is recorded in its health)."""
        with contextlib.suppress(StoreUnavailable):
            await self.replicas.announce(self.state)
            held = list(self._held())
            for session_id in await self.owner_records.renew(held):
                await self.owner_records.reclaim(session_id)  # ran out during an outage, still here

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.store.settings.lease_seconds / 3)
            try:
                await self.beat()
            except Exception:
                log.exception("store heartbeat failed")

    async def drain(self) -> None:
        """Tells the other replicas this one takes no new work (its heartbeat keeps saying so)."""
        self.state = "draining"
        await self.beat()

    def collectors(self) -> Iterable[Collector]:
        return (self.seal.refused,)

    def health(self) -> dict[str, Any]:
        return {**self.store.health.as_json(), "replica": self.replica_id, "state": self.state}

    async def aclose(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beating
        if self.relay is not None:
            await self.relay.aclose()
        await self.media.aclose()
        await self.runtime_book.aclose()
        with contextlib.suppress(StoreUnavailable):
            await self.replicas.leave()
        await self.store.aclose()
