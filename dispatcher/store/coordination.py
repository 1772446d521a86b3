"""What the dispatcher's replicas share, as one contract with two implementations.

`LocalCoordination` (dispatcher/store/local.py) is one process: every claim is granted, a
session's owner is always this replica, nothing is relayed, one-time tokens are spent in memory,
admission and rates are counted in this process and a cold session's values wait in memory.
`RedisCoordination` (dispatcher/store/redis_coordination.py) is several replicas sharing a
Valkey/Redis store (`REDIS_URL`). The app chooses one at start-up (dispatcher/factory.py) and
every consumer takes this contract: there is one code path, never a `None` for "no store".

When the store does not answer, the Redis implementation answers as one process would
(dispatcher/store/forgiving.py: one policy, in one place). Four calls are not forgiven, because
one process's answer would be wrong for several: the keyed start's lease (`StartLease.held`: two
replicas could both launch), finding another replica's bot or call (`ask_owner`, `ask_call`), and a carrier webhook's
sighting (`webhooks`: a security check; with the store down, the webhook seen at another replica
would be new here, and mint one more call token); nor is a retirement's claim record (`Claims.retiring`:
a sweep would stop a machine the replica holding its bot claims for a session meanwhile), nor the read of a
session's owner (`OwnerRecords.holder`) or anything of `StrandedClaims`: a sweep would take a live session's bot
for a stranded one. They raise
`StoreUnavailable`, and their callers say what that means to their own clients.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from dispatcher.store.sessions_census import Census
from dispatcher.store.share_ask import KeySessions as KeySessions
from dispatcher.store.share_ask import ShareAsk

if TYPE_CHECKING:  # annotations only: the Pulumi program imports the providers' create limits through
    # this contract in an environment without Redis or Prometheus (infra/'s own project)
    from prometheus_client.registry import Collector

    from dispatcher.store.media_bus import CallLine
    from dispatcher.store.relay import Handler
    from dispatcher.store.whatsapp_book import WhatsAppBook


class AtCapacity(Exception):
    """Every replica's sessions and launches together reach the cap."""


class Claims(Protocol):
    """Idle reserve bots across replicas (dispatcher/store/claims.py has the store's records)."""

    async def claim(self, bot_id: str, session_id: str, until: int | None = None) -> bool:
        """True if this session may take the idle bot (it is offered to one session, ever)."""
        ...

    async def unclaim(self, bot_id: str, session_id: str) -> None:
        """The claim for `session_id` failed: the bot is bound to it nowhere."""
        ...

    async def claimed_for(self, bot_id: str) -> str | None:
        """The session a claim at another replica bound the bot to, if any."""
        ...

    async def retiring(self, bot_id: str) -> bool:
        """Takes the bot's claim record for its retirement (RETIRING): True when it is the retirement's now
        (or was already), False when a session's claim took it first. Not forgiven: StoreUnavailable when the
        store does not answer, since a claim at the replica holding the bot is then granted by itself."""
        ...

    async def first_idle_hello(self, bot_id: str, expires: int) -> bool:
        """True unless an idle hello with `bot_id`'s credential was admitted at another replica."""
        ...

    async def record_hello(self, bot_id: str) -> None:
        """An idle bot said hello here (its launcher may be another replica, waiting for it)."""
        ...

    async def greeted(self, bot_ids: list[str]) -> set[str]:
        """Those of `bot_ids` that said hello at another replica."""
        ...

    async def claimed_among(self, bot_ids: list[str]) -> set[str]:
        """Those of `bot_ids` a session has claimed (at any replica)."""
        ...

    async def expect_back(self, bot_id: str, waiter: str, seconds: float) -> None:
        """A frozen bot is thawed: its next idle hello, at any replica, is admitted once, for `waiter`."""
        ...

    async def welcome_back(self, bot_id: str) -> str | None:
        """The waiter of a thawed bot expected back (the expectation is spent), or None."""
        ...

    async def admit_link(self, machine_id: str, presented: str | None, new: str, hold_seconds: float,
                         key_seconds: float) -> LinkAdmission:
        """A hello of a bot that dials with its identity alone (a pool bot: a copy of its pod's token is
        that bot too), with the digest of the resume key it `presented`: `first` when its pod has no key
        yet (`new` is now its key, and this replica holds its channel), `resumed` when it presented the
        key (this replica now holds its channel, whoever held it), `refused` when it did not, `elsewhere`
        when another replica holds a channel of the pod with no key (a store that lost the key)."""
        ...

    async def keep_link(self, machine_id: str, key: str, hold_seconds: float, key_seconds: float) -> bool:
        """Renews this replica's hold of `machine_id`'s channel and its key; False once another replica
        holds it or the key changed (the bot resumed elsewhere)."""
        ...

    async def let_go_link(self, machine_id: str) -> None:
        """This replica no longer holds `machine_id`'s channel: a re-dial may reach any replica."""
        ...


@dataclass(frozen=True)
class ClaimRecord:
    """A bot's claim record as the reserve's sweep reads it, times in epoch seconds on the store's clock."""

    session_id: str
    claimed_at: float | None  # when it was taken; None: not known (a claim a previous release wrote)
    now: float  # the store's clock as it was read


class StrandedClaims(Protocol):
    """What the reserve's sweep reads and writes about a claim that may never have landed
    (dispatcher/store/stranded_claims.py). Not forgiven: StoreUnavailable when the store does not answer,
    since a guess here stops a machine that may serve a call."""

    owner_lease_seconds: float  # how long a session's owner record outlives a replica that died holding its bot

    async def record(self, bot_id: str) -> ClaimRecord | None:
        """The bot's claim record, None when it has none."""
        ...

    async def link_held(self, machine_id: str) -> bool:
        """True while a replica holds a channel of the bot (its hold, renewed while the bot is connected)."""
        ...

    async def abandoned_for(self, bot_id: str, session_id: str) -> float:
        """Seconds since a sweep first found the bot's claim for `session_id` abandoned (0: now, the first)."""
        ...

    async def not_abandoned(self, bot_id: str) -> None:
        """A sweep found the bot's claim alive: the next abandoned verdict counts from scratch."""
        ...

    async def retire(self, bot_id: str, session_id: str) -> bool:
        """Takes the bot's claim record for its retirement (RETIRING, its expiry kept) if it still names
        `session_id`; False when it no longer does (given back, maybe claimed by another session since)."""
        ...


# What a retirement writes in a bot's claim record: no session id has a space, so no claim of the bot for a
# session (nor a claimed bot's hello, admitted for the session its record names) matches it.
RETIRING = "retired by the reserve"
LinkAdmission = Literal["first", "resumed", "refused", "elsewhere"]
PoolState = Literal["warming", "idle", "frozen", "resuming"]


@dataclass(frozen=True)
class PoolBot:
    """One reserve bot as the deployment counts it (times are epoch seconds: replicas share them)."""

    bot_id: str
    state: PoolState  # warming: launched, no hello yet; idle: on a channel, claimable; frozen: suspended;
    # resuming: thawed back to hot, not yet on a channel
    since: float  # when it entered that state
    image: str = ""
    transports: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplicaPool:
    """What one replica holds: the reserve bots whose channel ends there (and those it launched
    that have not said hello yet), and how many sessions its channel serves."""

    replica_id: str
    bots: tuple[PoolBot, ...] = ()
    sessions: int = 0


class ReservePool(Protocol):
    """The deployment's one reserve (dispatcher/store/pool.py has the store's records): each
    replica's bots counted once, the starts every replica saw, the planning lease and the
    planner's state, which outlives any replica."""

    async def publish(self, view: ReplicaPool) -> None:
        """This replica's bots now; a replica that stops publishing drops out one lease later."""
        ...

    async def views(self) -> list[ReplicaPool]:
        """Every live replica's bots (this one's included)."""
        ...

    async def withdraw(self) -> None:
        """This replica leaves: its bots are no longer offered to the others."""
        ...

    async def arrived(self, epoch: float, *, cold: bool) -> None:
        """A start at this replica (cold: it spent one of the provider's creates)."""
        ...

    async def arrivals(self) -> list[tuple[float, bool]]:
        """The starts recorded since the last call, at every replica (the planner's: it takes them)."""
        ...

    async def plan_lease(self) -> bool:
        """True while this replica plans for the deployment (takes the lease if free, renews it if held)."""
        ...

    async def plan_lease_in_store(self) -> bool:
        """The planning lease as the store itself grants it now: False while the store does not answer
        (never a replica's own stand-in lease). For a write to something the replicas share outside
        the store, which two replicas must never make at once (a platform's pool size)."""
        ...

    async def let_go(self) -> None:
        """Gives the planning lease up (a draining replica): another takes it at its next tick."""
        ...

    async def save(self, state: Mapping[str, Any]) -> None:
        """The planner's state (`FleetSizer.to_dict`), for the next lease holder."""
        ...

    async def load(self) -> dict[str, Any] | None: ...

    async def started_cold(self, seconds: float) -> None:
        """A cold start measured at this replica (launch or `POST /start` → the bot ready), kept
        with the deployment's last MAX_COLD_STARTS."""
        ...

    async def cold_starts(self) -> list[float]:
        """The deployment's last measured cold starts, oldest first."""
        ...


class StartLease(Protocol):
    def held(self, session_id: str, wait_seconds: float) -> AbstractAsyncContextManager[None]:
        """Holds the keyed session's start lease for the block. Raises `StartBusy` after
        `wait_seconds`, and `StoreUnavailable` when nobody can say who launches (not forgiven)."""
        ...


class OwnerRecords(Protocol):
    """Which replica holds a session's bot (dispatcher/store/owners.py)."""

    async def claim(self, session_id: str) -> None: ...

    async def reclaim(self, session_id: str) -> None:
        """Claims it only if no replica holds it."""
        ...

    async def release(self, session_id: str) -> None: ...

    async def holder(self, session_id: str) -> str | None:
        """The replica holding the session's bot now, if any (one process: itself). Not forgiven:
        StoreUnavailable when the store does not answer, since the reserve's sweep takes "none" for a
        session whose bot is gone and stops its machine."""
        ...


class Launches(Protocol):
    """Admission's tally: the provider's count of running sessions plus the launches since that
    count was asked for (dispatcher/sessions/admission.py decides when to count again). With
    several replicas the count is the deployment's: one replica counts, the others use its count."""

    async def recount(self, count: Callable[[], Awaitable[int]], fresh_seconds: float,
                      sessions: Callable[[], Awaitable[Collection[str]]] | None = None) -> float:
        """Counts running sessions with `count` (the provider), noting what launched meanwhile; or
        takes the count another replica asked for within `fresh_seconds` (or is asking for now)
        instead of counting again. Returns how long ago the count it took was asked for. With
        `sessions` (the provider's active session ids) and a store, the running sessions kept there
        stand in for the list between reconciles (dispatcher/store/running_sessions.py)."""
        ...

    async def ended(self, session_id: str) -> None:
        """The session ended: no longer counted in the running sessions kept (if any)."""
        ...

    def current(self) -> int:
        """This replica's estimate since the last recount (asked for once a count exists)."""
        ...

    def slot(self, limit: int, share: ShareAsk | None = None,
             session_id: str = "") -> AbstractAsyncContextManager[None]:
        """Holds one launch (of `session_id`, counted running once landed) for the block (it counts
        as launched when the block ends without an error). Raises `AtCapacity` on entry when `limit`
        is reached. With `share`, takes the key's place first, in the same step where the store
        allows (dispatcher/store/share_ask.py): raises `ShareHeld` (nothing taken) when the key
        holds its share; a cap that refuses leaves the place untaken; the place stays taken after
        the block (its owner gives it back)."""
        ...


class HeldPlaces(Protocol):
    """Places held under the session cap for sessions not started yet (a call another region handed
    here, from its token's minting until its stream connects or the token expires), counted for the
    whole region (dispatcher/store/held_places.py). Not forgiven: raises `StoreUnavailable`."""

    async def hold(self, place: str, room: int, seconds: float) -> bool:
        """Holds `place` for `seconds` if fewer than `room` places are held; else holds nothing (False)."""
        ...

    async def release(self, place: str) -> None:
        """`place` is taken (its session now counts under the cap itself), or will never be."""
        ...

    async def held(self) -> int:
        """How many places are held now."""
        ...


@dataclass(frozen=True)
class CreateTurn:
    """A launch's turn under the provider's create limit, as the deployment's one bucket gave it."""

    granted: bool  # a token was taken (a cold launch's may be due only after `wait`)
    wait: float  # seconds until the token is due (granted), or until a cold launch's would be
    spare: int  # whole tokens a refill may still take now, leaving one for a cold start
    # Not granted: the holder's own turn taken earlier is still due in `wait`; it asks again then (a share).
    queued: bool = False


class CreateLimit(Protocol):
    """The provider's create limit (Fly: 1 create/s per app, burst 3), counted once for the
    deployment: every replica's cold launches and the planner's refills take their token here, so
    the deployment never outruns the provider whatever the number of replicas. A cold launch has a
    caller waiting and goes first: it may reserve a token due later, and a refill takes one only
    while one more remains for a cold start (so a refill never takes a token a cold launch has
    reserved). Another app-wide action the provider limits is counted by the same bucket under its
    own name, its calls taking their turns as cold launches do (Fly's lists: `fly-list:<app>`)."""

    async def cold(self, max_wait: float, ticket: str = "") -> CreateTurn:
        """Reserves the next token for a cold launch, due after `wait`; none when that wait would
        pass `max_wait` (granted False). `ticket`: the call's, under which it may give the turn back."""
        ...

    async def refill(self) -> CreateTurn:
        """A token now for a reserve launch, only if one remains for a cold start afterwards."""
        ...

    async def look(self) -> CreateTurn:
        """What a cold launch asked for now would wait, and the refills' spare tokens (takes nothing)."""
        ...

    async def shared(self, holder: str, max_wait: float, ticket: str = "") -> CreateTurn:
        """A cold turn for `holder` (an API key) while it has no other turn still due nor other calls queued
        before this one; else none, `queued`, `wait` being when this call asks again (with the same `ticket`,
        its place in the holder's queue; "" for a call that asks once). Each holder thus holds one turn ahead
        at a time, its turns interleaving with every other holder's, round-robin. A call whose turn could
        not come within `max_wait`, the holder's turn and calls queued before it counted, is refused at
        once (`wait`: the earliest its turn could come), so a holder's waiting calls stay within what the
        pace serves in `max_wait` (docs/phone.md#sharing-a-pace)."""
        ...

    async def turn_of(self, what: str, keep_seconds: float, longest: float = math.inf) -> CreateTurn:
        """The turn recorded for `what` (a call's INVITE): granted, `wait` the seconds until it; taken as a
        cold turn at the first ask and kept `keep_seconds`: one read-or-take, so asks at once take one turn,
        and every replica reads the same wait on the store's clock. A turn not yet recorded that could come
        no sooner than `longest` is not taken: refused, `wait` the earliest it could come (the default: taken
        however far off, where the caller bounds the queue)."""
        ...

    async def give_back(self, ticket: str, holder: str | None = None) -> None:
        """What the call of `ticket` (`cold`, `shared`) holds, given back as it is cancelled: its place in
        `holder`'s queue, and its turn, where still to come, taken by the next call to ask
        (dispatcher/store/given_turns.py). Nothing where it holds nothing."""
        ...

    async def give_back_turn(self, what: str) -> None:
        """The turn `turn_of` recorded for `what`, given back (its record gone) where it is still to come."""
        ...


class CreateLimits(Protocol):
    """Where a provider takes its create limits: the coordination (the deployment's one count), or
    this process's own count where nothing is ever created (stacks.drain only lists and stops)."""

    def create_limit(self, name: str, per_second: float, burst: int) -> CreateLimit:
        ...


class Rate(Protocol):
    async def take(self, caller: str) -> float:
        """0 if the caller's call may go; else the seconds until it could."""
        ...


class WeightedRate(Protocol):
    async def take(self, caller: str, cost: int) -> float:
        """0 if the caller's call, costing `cost` tokens, may go (and takes them); else the seconds
        until it could (taking none)."""
        ...


class CredentialCounts(Protocol):
    """Credentials a caller holds until they expire (TURN: dispatcher/media/turn_quota.py)."""

    async def take(self, caller: str, handle: str, now: float, expires: float, bound: int) -> float:
        """0 when `handle` now counts for the caller; else the seconds until one of its `bound`
        credentials expires."""
        ...

    async def give_back(self, caller: str, handle: str) -> None: ...


class Turns(Protocol):
    """The first replica to ask for `what` within `seconds` has it, until it runs out or is given back."""

    async def take(self, what: str, seconds: float) -> bool: ...

    async def give_back(self, what: str) -> None:
        """Raises `StoreUnavailable` (the turn then runs out with its seconds)."""
        ...


class SessionsCensus(Protocol):
    """The provider's last count of the sessions, kept for every replica (dispatcher/store/sessions_census.py)."""

    async def write(self, census: Census) -> None:
        """Raises `StoreUnavailable`."""
        ...

    async def read(self, now: float) -> Census | None:
        """Raises `StoreUnavailable`."""
        ...


class OneTimeUse(Protocol):
    async def first_use(self, what: str, seconds: float) -> bool:
        """True the first time `what` is presented within `seconds`."""
        ...


class ReleasableOnce(OneTimeUse, Protocol):
    """A one-time use whose claim can be given back: a request claims it before it acts (so that of two
    copies at two replicas only one acts) and releases it when acting failed in a way its sender retries."""

    async def release(self, what: str) -> None:
        """Forgets that `what` was used, at every replica, so that its next presentation counts again
        (raises `StoreUnavailable` when the store does not answer)."""
        ...


class FirstClaims(Protocol):
    async def first(self, what: str, value: str, seconds: float) -> str:
        """The value recorded first for `what` within `seconds` (`value` when this is the first), across
        every replica; raises `StoreUnavailable` when the store does not answer (never guessed)."""
        ...

    async def held(self, what: str) -> str | None:
        """The value recorded for `what` (None: nothing is); raises `StoreUnavailable` as `first` does."""
        ...

    async def keep(self, what: str, value: str, seconds: float) -> bool:
        """Keeps `what` recorded for `seconds` from now if `value` is what it holds (else nothing)."""
        ...

    async def let_go(self, what: str, value: str) -> None:
        """Forgets `what` if `value` is what it holds (a record whose holder made nothing after all)."""
        ...

    async def swap(self, what: str, value: str, new: str, seconds: float) -> bool:
        """Records `new` for `what`, kept `seconds` from now, if `value` is what it holds (else nothing)."""
        ...


class SessionValues(Protocol):
    """Where a cold session's values wait for its bot's hello (dispatcher/store/secrets_vault.py)."""

    async def put(self, session_id: str, values: Mapping[str, Any], ttl_seconds: float) -> None:
        """Raises `VaultFull` when no more can wait here."""
        ...

    async def get(self, session_id: str) -> dict[str, Any] | None: ...

    async def read(self, session_id: str) -> dict[str, Any] | None:
        """`get` for the bot's delivery: a store that blinks is asked again before giving up."""
        ...

    async def delete(self, session_id: str) -> None: ...


class CallHandle(Protocol):
    """A phone call whose carrier socket is here, as seen from the other replicas."""

    hello: asyncio.Future[str]  # done when the bot's media socket reached another replica (its id)

    def line(self) -> CallLine:
        """The call's line to that replica, once `hello` is done."""
        ...

    def media_here(self) -> None:
        """The bot's media socket reached this replica: nobody else will answer."""
        ...

    async def end(self, reason: str) -> None: ...


class CallMedia(Protocol):
    """Phone calls whose two sockets may be at two replicas (docs/phone.md)."""

    replica_id: str
    lease_seconds: float

    async def open(self, session_id: str, secret: str) -> CallHandle:
        """This replica holds the call's carrier socket; `secret` opens its bot's media socket once."""
        ...

    async def spend(self, session_id: str, secret: str) -> str | None:
        """The replica holding the call's carrier socket, if `secret` opens its media socket there."""
        ...

    async def spend_here(self, session_id: str, secret: str) -> bool:
        """A secret this replica matched itself: True unless another replica spent it first."""
        ...

    async def line_to(self, session_id: str, carrier_replica: str) -> CallLine:
        """The bot's side of a call whose carrier socket is at `carrier_replica`."""
        ...


class Timelines(Protocol):
    """Each session's events, kept a bounded time and length (dispatcher/store/timelines.py)."""

    async def append(self, session_id: str, event: Mapping[str, Any]) -> None: ...

    async def read(self, session_id: str) -> list[dict[str, Any]]:
        """The session's events, oldest first (empty when none are kept)."""
        ...

    async def read_shared(self, session_id: str) -> list[dict[str, Any]]:
        """As `read`, but only what every replica sees: a store that does not answer raises
        `StoreUnavailable` instead of being answered from this replica's memory (one process: its own)."""
        ...


class SessionIndex(Protocol):
    """The sessions by time, per caller and for the deployment (dispatcher/store/session_index.py)."""

    async def opened(self, entry: Mapping[str, Any]) -> None: ...

    async def closed(self, session_id: str, end: Mapping[str, Any], *, failure: bool) -> None:
        """A session's end or `failure`, kept beside its entry: the first of each told; a failure
        shows over an end."""
        ...

    async def noted(self, session_id: str, note: Mapping[str, Any], *, record: str = "noted") -> None:
        """A fact of a session kept beside its entry, the first one told: its bot's first pipeline error
        (`noted`), or, once it ended, its cost (`costed`, dispatcher/usage/usage_count.py); it ends nothing."""
        ...

    async def entry(self, session_id: str) -> dict[str, Any] | None:
        """One session's entry, as a page shows it (with its note, end or failure); None: not kept."""
        ...

    async def page(self, caller: str, below: tuple[int, str] | None, examine: int) -> Any:
        """At most `examine` entries of `caller`'s sessions ("": every caller's), newest first,
        older than `below`: an `IndexPage`."""
        ...


class ReleaseBook(Protocol):
    """The deployment's traffic over its releases (dispatcher/releases/traffic.py's record, as JSON)
    and its audit trail: what every replica reads each second and an admin change writes."""

    async def read(self) -> dict[str, Any] | None:
        """The stored traffic record, or None before the first one."""
        ...

    async def write(self, record: Mapping[str, Any], replaces: list[Any] | None) -> bool:
        """Stores `record` if the stored one's `version` is still `replaces` (None: nothing stored yet);
        False when another change came first (read again, decide again)."""
        ...

    async def note(self, change: Mapping[str, Any]) -> None:
        """Appends one change to the audit trail (the newest `HISTORY_KEPT` are kept)."""
        ...

    async def history(self, limit: int) -> list[dict[str, Any]]:
        """The trail, newest first."""
        ...


HISTORY_KEPT = 1000


class AuditTrail(Protocol):
    """Who did what, when: the newest `HISTORY_KEPT` lines (dispatcher/store/audit_trail.py)."""

    async def note(self, line: Mapping[str, Any]) -> None: ...

    async def history(self, limit: int) -> list[dict[str, Any]]:
        """The trail, newest first."""


class RuntimeBook(Protocol):
    """The runtime settings an admin changes without a restart (capacity values, API keys), as one
    record with a version, their audit trail, a nudge to every replica, and each key's use
    (dispatcher/store/runtime_book.py). Not forgiven: its reader keeps the values it last read."""

    async def read(self) -> dict[str, Any] | None:
        """The stored record, or None before the first one."""
        ...

    async def write(self, record: Mapping[str, Any], replaces: int | None) -> bool:
        """Stores `record` if the stored one's `version` is still `replaces` (None: nothing stored);
        False when another change came first (read again, decide again)."""
        ...

    async def nudge(self) -> None:
        """Tells every replica to read the record now."""
        ...

    async def listen(self, changed: Callable[[], None]) -> None:
        """`changed` is called at every nudge (from any replica) from now on."""
        ...

    async def used(self, name: str, at: float, sessions: int) -> None:
        """Key `name` was used at `at` (epoch seconds) and started `sessions` more sessions."""
        ...

    async def uses(self) -> dict[str, tuple[float, int]]:
        """Each key's last use and the sessions it started."""
        ...

    async def note(self, line: Mapping[str, Any]) -> None:
        """Appends one change to the audit trail (the newest `HISTORY_KEPT` are kept)."""
        ...

    async def history(self, limit: int) -> list[dict[str, Any]]:
        """The trail, newest first."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class SampleRead:
    """What a release's sample holds past a reader's last look."""

    entries: list[tuple[int, list[Any]]]  # (number, entry) recorded after the number asked for, oldest first
    last: int  # the newest number recorded (0: none; lower than a reader's last look: the sample was lost)
    since: float  # epoch seconds from which the release is judged afresh (0: from its first session)


class ReleaseSamples(Protocol):
    """Each release's judged sessions, the automatic rollback's sample, shared by every replica
    (dispatcher/store/release_samples.py): a session counts once, wherever its end was seen, and a
    replica that starts reads the sample the others built. Not forgiven: raises `StoreUnavailable`."""

    async def add(self, release: str, session_id: str, entry: list[Any], *, keep: int, keep_seconds: float) -> bool:
        """Records `entry` for `release` unless `session_id` was recorded already (for any release):
        True when it is recorded now. The newest `keep` are kept, for `keep_seconds` after the last."""
        ...

    async def read(self, release: str, after: int) -> SampleRead:
        """The entries recorded after number `after`."""
        ...

    async def restart(self, release: str, since: float, keep_seconds: float) -> None:
        """`release` is judged afresh from `since` (epoch seconds): its older entries no longer count.
        An earlier `since` than the recorded one changes nothing (every replica may say it)."""
        ...


class Coordination(Protocol):
    replica_id: str
    timelines: Timelines
    session_index: SessionIndex  # what `GET /sessions` lists
    starts: StartLease
    owners: OwnerRecords
    claims: Claims
    stranded_claims: StrandedClaims  # the sweep's look at a claim that never landed (not forgiven)
    spent: OneTimeUse  # a phone call's one-time token
    turns: Turns  # a turn for the deployment: one replica a period lists every machine (dispatcher/store/turns.py)
    sessions_census: SessionsCensus  # the provider's last count of the sessions, for GET /status
    webhooks: ReleasableOnce  # a carrier webhook's sighting (not forgiven: raises `StoreUnavailable`)
    identity_proofs: OneTimeUse  # a bot hello's machine identity proof (dispatcher/channel/identity.py)
    # Which region holds an Idempotency-Key this region is home to; a placed call's turn, SID, verdict (not forgiven).
    key_holders: FirstClaims
    calls: CallMedia
    pool: ReservePool
    key_sessions: KeySessions  # each API key's share of the session cap
    held_places: HeldPlaces  # places handed calls' tokens hold under the session cap (not forgiven)
    releases: ReleaseBook  # traffic over the releases and its audit trail (not forgiven: its reader keeps the last)
    # An admin's reads and stops of sessions another key started (not forgiven: unrecorded, it is refused).
    session_audit: AuditTrail
    release_samples: ReleaseSamples  # the automatic rollback's sample of each release (not forgiven)
    runtime: RuntimeBook  # capacity and API keys an admin changes at runtime (not forgiven: the last read is kept)
    whatsapp_calls: WhatsAppBook  # WhatsApp calls, for a hang-up at Meta from any replica (dispatcher/whatsapp/)

    def launches(self, keep_seconds: float) -> Launches:
        """Admission's tally (one per admission: it holds this replica's own count)."""
        ...

    def start_rate(self, per_second: float, burst: int) -> Rate:
        """Per-key start rate for the whole deployment."""
        ...

    def weighted_rate(self, name: str, per_second: float, burst: int) -> WeightedRate:
        """A per-caller rate whose calls cost several tokens (`GET /usage`'s days), for the whole deployment."""
        ...

    def create_limit(self, name: str, per_second: float, burst: int) -> CreateLimit:
        """The provider's create limit `name` for the whole deployment (one object per name: the
        provider's cold launches and the reserve's refills share it), or another of its app-wide
        limits counted the same way (`fly-list:<app>`)."""
        ...

    def turn_credentials(self) -> CredentialCounts: ...

    def session_values(self, sealing_key: bytes) -> SessionValues: ...

    async def ask_owner(
        self, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        """The answer of the replica holding `session_id`'s bot; None when no other replica holds
        it. Raises `StoreUnavailable` (not forgiven), or `TimeoutError` when the owner is silent."""
        ...

    async def ask_call(
        self, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        """The answer of the replica holding `session_id`'s phone call (its carrier socket, by the call's
        media record); None when no other replica holds one. `timeout` bounds the whole ask, the look-up
        included. Raises `StoreUnavailable` (not forgiven) only while nothing was sent, `TimeoutError` when
        the request may have reached that replica but no answer came in time, `RelayRefused` with its refusal."""
        ...

    async def ask_replica(
        self, replica_id: str, session_id: str, method: str, params: Mapping[str, Any], timeout: float
    ) -> Mapping[str, Any] | None:
        """The answer of `replica_id` (an idle bot's claim there); None when it does not listen
        (gone) or is this replica. Raises `StoreUnavailable`, `TimeoutError`, `RelayRefused`."""
        ...

    async def start(self, handler: Handler, held: Callable[[], Iterable[str]]) -> None:
        """`handler` answers what other replicas relay here; `held()` names the sessions whose bots are here."""
        ...

    async def drain(self) -> None:
        """This replica takes no new work."""
        ...

    def collectors(self) -> Iterable[Collector]:
        """Its metrics, for the app's registry (the store's refused messages)."""
        ...

    def health(self) -> dict[str, Any]:
        """For `/healthz`: the store's health (empty for one process, which has none)."""
        ...

    async def aclose(self) -> None: ...
