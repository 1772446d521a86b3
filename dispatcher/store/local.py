"""One dispatcher process: the coordination contract (dispatcher/store/coordination.py) with no store.

Every claim is this process's to make (a bot's own one-assignment rule and the pool's synchronous
take keep it to one session), a session's owner is always here and nothing is relayed, one-time
tokens are spent in memory, admission and rates are counted here, a cold session's values wait
in memory. The default, local mode's, and a single replica's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from prometheus_client.registry import Collector

from dispatcher.store.audit_trail import MemoryTrail
from dispatcher.store.claims import FIRST_KEY_SECONDS
from dispatcher.store.client import StoreUnavailable
from dispatcher.store.coordination import (
    AuditTrail,
    CallHandle,
    CallMedia,
    ClaimRecord,
    Claims,
    CreateLimit,
    CredentialCounts,
    FirstClaims,
    HeldPlaces,
    KeySessions,
    Launches,
    LinkAdmission,
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
from dispatcher.store.held_places import HeldPlaceRecords
from dispatcher.store.key_sessions import LocalKeySessions
from dispatcher.store.media_bus import CallLine
from dispatcher.store.memory import (
    LocalCreateLimit,
    LocalCredentialCounts,
    LocalFirstClaims,
    LocalLaunches,
    LocalOnce,
    LocalPool,
    LocalRate,
)
from dispatcher.store.relay import Handler
from dispatcher.store.release_book import MemoryReleaseBook
from dispatcher.store.release_samples import MemoryReleaseSamples
from dispatcher.store.runtime_book import MemoryRuntimeBook
from dispatcher.store.secrets_vault import MemoryVault
from dispatcher.store.session_index import MemorySessionIndex
from dispatcher.store.sessions_census import LocalCensus
from dispatcher.store.timelines import MemoryTimelines
from dispatcher.store.turns import LocalTurns
from dispatcher.store.weighted_rates import LocalWeightedRate
from dispatcher.store.whatsapp_book import MemoryWhatsAppBook, WhatsAppBook

LOCAL_REPLICA = "local"


class LocalClaims:
    def __init__(self) -> None:
        self._thawing: dict[str, str] = {}  # bot id → who waits for it (spent by its hello or its deadline)
        self._link_keys: dict[str, tuple[str, float]] = {}  # identity-only bot → its resume key's digest, until

    async def claim(self, bot_id: str, session_id: str, until: int | None = None) -> bool:
        return True

    async def unclaim(self, bot_id: str, session_id: str) -> None:
        pass

    async def claimed_for(self, bot_id: str) -> str | None:
        return None  # a claim here binds the bot in the channel's own records (dispatcher/channel/admission.py)

    async def retiring(self, bot_id: str) -> bool:
        return True  # one process: a bot it claims is off its pool (and serving) before a retirement looks

    async def first_idle_hello(self, bot_id: str, expires: int) -> bool:
        return True  # the channel remembers the hellos it admitted itself

    async def record_hello(self, bot_id: str) -> None:
        pass

    async def greeted(self, bot_ids: list[str]) -> set[str]:
        return set()  # every bot this process launched dials this process

    async def claimed_among(self, bot_ids: list[str]) -> set[str]:
        return set()  # a claim here takes the bot out of this process's own count at once

    async def expect_back(self, bot_id: str, waiter: str, seconds: float) -> None:
        self._thawing[bot_id] = waiter

    async def welcome_back(self, bot_id: str) -> str | None:
        return self._thawing.pop(bot_id, None)

    async def admit_link(self, machine_id: str, presented: str | None, new: str, hold_seconds: float,
                         key_seconds: float) -> LinkAdmission:
        now = time.monotonic()
        key, until = self._link_keys.get(machine_id, ("", 0.0))
        if until <= now:
            if presented is not None:
                return "refused"  # never adopted: a key this process does not hold
            self._link_keys[machine_id] = (new, now + FIRST_KEY_SECONDS)  # until its link is kept once
            return "first"
        if presented != key:
            return "refused"
        self._link_keys[machine_id] = (key, now + key_seconds)
        return "resumed"

    async def keep_link(self, machine_id: str, key: str, hold_seconds: float, key_seconds: float) -> bool:
        stored, until = self._link_keys.get(machine_id, ("", 0.0))
        if stored != key and until > time.monotonic():
            return False
        self._link_keys[machine_id] = (key, time.monotonic() + key_seconds)
        return True

    async def let_go_link(self, machine_id: str) -> None:
        pass


class LocalStrandedClaims:
    """One process keeps no claim record (a claim binds the bot in the channel's own records): nothing is
    ever found stranded, and a retirement never takes a session's claim."""

    owner_lease_seconds = 0.0

    async def record(self, bot_id: str) -> ClaimRecord | None:
        return None

    async def link_held(self, machine_id: str) -> bool:
        return True

    async def abandoned_for(self, bot_id: str, session_id: str) -> float:
        return 0.0

    async def not_abandoned(self, bot_id: str) -> None:
        pass

    async def retire(self, bot_id: str, session_id: str) -> bool:
        return False


class LocalStartLease:
    @contextlib.asynccontextmanager
    async def held(self, session_id: str, wait_seconds: float) -> AsyncIterator[None]:
        yield  # one process: the reserve's and the provider's own idempotency guard the key


class LocalOwners:
    async def claim(self, session_id: str) -> None:
        pass

    async def reclaim(self, session_id: str) -> None:
        pass

    async def release(self, session_id: str) -> None:
        pass

    async def holder(self, session_id: str) -> str | None:
        return LOCAL_REPLICA  # one process holds every session's bot on its own channel


class LocalCall:
    """A call whose bot's media socket can only reach this process: nobody else ever answers."""

    def __init__(self) -> None:
        self.hello: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def line(self) -> CallLine:
        raise RuntimeError("one process: no other replica holds a call's media")

    def media_here(self) -> None:
        pass

    async def end(self, reason: str) -> None:
        pass  # `hello` stays pending: a call that ends while its start waits is not "answered elsewhere"


class LocalCallMedia:
    lease_seconds = 15.0  # unused: no other replica to hear from

    def __init__(self, replica_id: str) -> None:
        self.replica_id = replica_id

    async def open(self, session_id: str, secret: str) -> CallHandle:
        return LocalCall()

    async def spend(self, session_id: str, secret: str) -> str | None:
        return None  # a secret this process did not match itself opens nothing here

    async def spend_here(self, session_id: str, secret: str) -> bool:
        return True  # the media links spent it in this process's memory

    async def line_to(self, session_id: str, carrier_replica: str) -> CallLine:
        raise StoreUnavailable("one process: no other replica holds a call's carrier socket")


class LocalCoordination:
    def __init__(self, replica_id: str = LOCAL_REPLICA) -> None:
        self.replica_id = replica_id
        self.starts: StartLease = LocalStartLease()
        self.owners: OwnerRecords = LocalOwners()
        self.claims: Claims = LocalClaims()
        self.stranded_claims: StrandedClaims = LocalStrandedClaims()
        self.spent: OneTimeUse = LocalOnce()
        self.turns: Turns = LocalTurns()
        self.sessions_census: SessionsCensus = LocalCensus()
        self.webhooks: ReleasableOnce = LocalOnce()
        self.identity_proofs: OneTimeUse = LocalOnce()
        self.key_holders: FirstClaims = LocalFirstClaims()
        self.calls: CallMedia = LocalCallMedia(replica_id)
        self.pool: ReservePool = LocalPool()
        self.timelines: Timelines = MemoryTimelines()
        self.session_index: SessionIndex = MemorySessionIndex()
        self.key_sessions: KeySessions = LocalKeySessions()
        self.held_places: HeldPlaces = HeldPlaceRecords(LocalKeySessions())
        self.releases: ReleaseBook = MemoryReleaseBook()
        self.session_audit: AuditTrail = MemoryTrail()
        self.release_samples: ReleaseSamples = MemoryReleaseSamples()
        self.runtime: RuntimeBook = MemoryRuntimeBook()
        self.whatsapp_calls: WhatsAppBook = MemoryWhatsAppBook()
        self._create_limits: dict[str, LocalCreateLimit] = {}

    def launches(self, keep_seconds: float) -> Launches:
        return LocalLaunches()

    def start_rate(self, per_second: float, burst: int) -> Rate:
        return LocalRate(per_second, burst)

    def weighted_rate(self, name: str, per_second: float, burst: int) -> WeightedRate:
        return LocalWeightedRate(per_second, burst)

    def create_limit(self, name: str, per_second: float, burst: int) -> CreateLimit:
        # One bucket per limit, the provider's and the reserve's, whatever rate refills it now.
        limit = self._create_limits.get(name)
        if limit is None or (limit.per_second, limit.burst) != (per_second, burst):
            limit = LocalCreateLimit(per_second, burst) if limit is None else limit.retuned(per_second, burst)
            self._create_limits[name] = limit
        return limit

    def turn_credentials(self) -> CredentialCounts:
        return LocalCredentialCounts()

    def session_values(self, sealing_key: bytes) -> SessionValues:
        return MemoryVault()

    async def ask_owner(
        self, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        return None  # every session's bot is here, or nowhere

    async def ask_call(
        self, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        return None  # every call's stream is here, or nowhere

    async def ask_replica(
        self, replica_id: str, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        return None  # there is no other replica

    async def start(self, handler: Handler, held: Callable[[], Iterable[str]]) -> None:
        pass

    async def drain(self) -> None:
        pass

    def collectors(self) -> Iterable[Collector]:
        return ()  # nothing crosses a store

    def health(self) -> dict[str, Any]:
        return {}

    async def aclose(self) -> None:
        pass
