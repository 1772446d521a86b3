"""The deployment at a glance (`GET /status`, docs/http-api.md): sessions running, the reserve,
recent starts and refusals, cost per hour, replicas and regions.

Sessions come from the provider's list and the reserve from the store's pool: this region's, whichever
replica answers. Starts, refusals and the history are this replica's (dispatcher/observability/activity.py).
Each answer is built at most once per FRESH_SECONDS per replica, by one request at a time: any number
of open pages cost one store read every FRESH_SECONDS. The sessions come from a list of every machine
the provider holds, taken once for the deployment, not per replica (dispatcher/store/sessions_census.py),
and not again while the last is fresh: FRESH_SECONDS, or ten times what the last list took (a list of
100,000 machines takes seconds of a replica's event loop); a chart's sample takes one up to SAMPLE_SECONDS
old, or ten times what its list took."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from dispatcher.api.replica_roll import ReplicaRoll
from dispatcher.api.running_everywhere import RunningEverywhere
from dispatcher.api.schemas import StatusSessions
from dispatcher.errors import ApiError
from dispatcher.machines.base import FrozenMachines, Machines
from dispatcher.machines.cells import cells_status
from dispatcher.observability.activity import SLOT_SECONDS, Activity
from dispatcher.outbound.provider_errors import ProviderError, as_api_error
from dispatcher.regions.peers import Peers
from dispatcher.releases.names import DEFAULT_RELEASE
from dispatcher.reserve.prices import HOURS_PER_MONTH, BotPrice
from dispatcher.reserve.reserve import Reserve
from dispatcher.store.coordination import Coordination, ReplicaPool
from dispatcher.store.live_sessions import PUBLISH_SECONDS, StoreLiveSessions
from dispatcher.store.sessions_census import KEPT_SECONDS, Census
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.api.status")

FRESH_SECONDS = 2.0
BUILD_SECONDS = 15.0  # a provider list slower than this is answered 503, not waited on
SAMPLE_SECONDS = 2 * SLOT_SECONDS  # the charts' sessions and idle bots: two samples a minute
RUNNING_TIERS = ("idle", "warming", "resuming")  # reserve bots whose machine runs (and costs compute)
RETIRING = "(retiring)"  # a reserve bot of an image no release with traffic has
ONE_REGION = "default"  # the region's name without REGION (one region)
LIST_COST_SHARE = 10  # a list is not taken again within this many times what the last one took
LISTING = "status-census-listing"  # a replica taking the list of every machine for the deployment now


class StatusView:
    def __init__(self, *, machines: Machines, reserve: Reserve | None, coordination: Coordination, peers: Peers,
                 activity: Activity, region: str, price: BotPrice | None,
                 evals: Callable[[], Awaitable[set[str]]] | None = None,
                 clock: Callable[[], float] = time.monotonic, live: StoreLiveSessions | None = None,
                 wall: Callable[[], float] = time.time) -> None:
        self._machines = machines
        self.running = RunningEverywhere(machines, live)  # the deployment's sessions (local bots: every replica's)
        # The last count of the sessions, this replica's and (a cloud provider's whole list) the store's.
        self._census: tuple[float, Census] | None = None  # (when on `clock`, what)
        # Local bots with several replicas: each replica's own list, never one replica's for all.
        self._shares_census = not self.running.publishes
        self._wall = wall
        self._evals = evals  # the evals' active sessions (the listing's): counted apart from callers' sessions
        self._price = price  # one running bot, the same price a session's cost reads (reserve/prices.py)
        self._reserve = reserve
        self._coordination = coordination
        self._turns = coordination.turns  # who lists every machine now
        self._peers = peers
        self.activity = activity
        self._region = region or ONE_REGION
        self._clock = clock
        self._lock = asyncio.Lock()
        self._last: tuple[float, dict[str, Any]] | None = None
        self._roll = ReplicaRoll()  # the replicas seen, so one that stops answering is named

    async def snapshot(self) -> dict[str, Any]:
        """The current answer: the provider's and the store's counts fresh, or as another request counted
        them within FRESH_SECONDS; this replica's starts and refusals as they are now."""
        counted = await self._counted()
        return {**counted, "starts": self.activity.windows()}

    async def _counted(self, census_within: float | None = None) -> dict[str, Any]:
        """`census_within`: the oldest count of the sessions taken (None: FRESH_SECONDS), or ten times what
        its list took where that is longer."""
        if (fresh := self._fresh()) is not None:
            return fresh
        async with self._lock:
            if (fresh := self._fresh()) is not None:
                return fresh
            try:
                async with asyncio.timeout(BUILD_SECONDS):
                    body = await self._build(census_within)
            except TimeoutError:
                raise ApiError(503, "status_unavailable", f"the provider's list of machines took over "
                               f"{BUILD_SECONDS:g} s; try again shortly (GET /healthz says whether the "
                               "dispatcher is degraded)") from None
            self._last = (self._clock(), body)
            # Each count is a sample for the charts too (the last of its minute is the one shown).
            self.activity.sampled(sessions=body["sessions"]["running"],
                                  reserve_idle=body["reserve"]["by_state"]["idle"] if self._reserve else None)
            return body

    async def run(self) -> None:
        """Counts every SAMPLE_SECONDS while the app serves, so the charts go on with no page open; a
        failed count is a gap in the chart. Local bots with several replicas: this replica's running
        sessions published every PUBLISH_SECONDS too, for the others' counts."""
        due = 0.0
        while True:
            try:
                await self.running.publish()
            except Exception as exc:  # the store: the next publish tries again, within the lease
                log.info("running sessions not published: %s", exc)
            if self._clock() >= due:
                due = self._clock() + SAMPLE_SECONDS
                try:
                    await self._counted(census_within=SAMPLE_SECONDS)
                except Exception as exc:  # the provider or the store: the next sample tries again
                    log.info("status sample skipped: %s", exc)
            await asyncio.sleep(PUBLISH_SECONDS if self.running.publishes else SAMPLE_SECONDS)

    def _fresh(self) -> dict[str, Any] | None:
        if self._last is not None and self._clock() - self._last[0] < FRESH_SECONDS:
            return self._last[1]
        return None

    async def _build(self, census_within: float | None) -> dict[str, Any]:
        census = await self._sessions(census_within)
        sessions, whole = census.sessions, census.whole
        views, uncounted = await self._pool()
        reserve = self._reserve_of(views)
        # Local bots are each replica's own processes: every replica's lists, or this one's alone when the
        # store did not give the others' (docs/replicas.md, "Limits").
        sessions_scope = "region" if whole else "replica"
        scope = {"sessions": sessions_scope, "reserve": "region", "cost": "region", "starts": "replica"}
        if uncounted is not None:
            reserve["problem"] = uncounted
            scope |= {"reserve": "replica", "cost": "replica"}
        regions = self._regions(reserve["total"])
        reserve["by_region"] = {r["name"]: r["reserve"] for r in regions if r["reserve"] is not None}
        return {
            "at": round(time.time(), 3),
            "counted_at": round(census.at, 3),
            "region": self._region,
            "replica": self._coordination.replica_id,
            "provider": self._machines.name,
            "scope": scope,
            "sessions": sessions,
            "reserve": reserve,
            "cost": self._cost(census.machines, reserve["by_state"]),
            "replicas": [{"id": v.replica_id, "sessions": v.sessions, "reserve": len(v.bots)}
                         for v in sorted(views, key=lambda v: v.replica_id)],
            "replicas_not_answering": self._roll.missing([v.replica_id for v in views], await self._live(),
                                                         time.time()),
            "regions": regions,
            **({"cells": cells} if (cells := cells_status(self._machines)) is not None else {}),
        }

    async def _sessions(self, within: float | None) -> Census:
        """The sessions as the last list counted them where it is fresh enough (this replica's, else the
        one another replica kept in the store), else as a new list counts them (kept for the others).
        While another replica lists, its last census stands, up to KEPT_SECONDS old."""
        if self._census is not None and self._fresh_enough(self._census[1], self._clock() - self._census[0], within):
            return self._census[1]
        kept = await self._kept_census()
        if kept is not None and self._fresh_enough(kept, kept.age(self._wall()), within):
            self._census = (self._clock() - kept.age(self._wall()), kept)
            return kept
        if kept is None or kept.age(self._wall()) >= KEPT_SECONDS:
            return await self._listed()
        if not await self._list_turn():
            return kept
        try:
            return await self._listed()
        finally:
            await self._list_done()

    async def _listed(self) -> Census:
        began, at = self._clock(), self._wall()
        try:
            machines, whole = await self.running.running()
        except ProviderError as exc:
            raise as_api_error(exc) from exc
        took = self._clock() - began
        evals = await self._eval_ids()
        callers = [m for m in machines if m.session_id not in evals]
        sessions = {
            "running": len(callers),
            "by_status": _counted(m.state.value for m in callers),
            "by_release": _counted(m.release or DEFAULT_RELEASE for m in callers),
            "by_region": {self._region: len(callers)},
            "evals": {"running": len(machines) - len(callers),
                      "by_release": _counted(m.release or DEFAULT_RELEASE for m in machines if m.session_id in evals)},
        }
        census = Census(at=at, took=took, sessions=sessions, machines=len(machines), whole=whole)
        self._census = (began, census)
        if self._shares_census and whole:
            try:
                await self._coordination.sessions_census.write(census)
            except StoreUnavailable as exc:  # the others list for themselves meanwhile
                log.info("status: the sessions' count not kept for the other replicas (%s)", exc)
        return census

    async def _list_turn(self) -> bool:
        """True unless another replica is listing now (its census comes within BUILD_SECONDS)."""
        try:
            return await self._turns.take(LISTING, BUILD_SECONDS)
        except Exception:  # the store: list here
            return True

    async def _list_done(self) -> None:
        with contextlib.suppress(Exception):  # the store: the mark runs out within BUILD_SECONDS
            await self._turns.give_back(LISTING)

    @staticmethod
    def _fresh_enough(census: Census, age: float, within: float | None) -> bool:
        return age < min(max(within or FRESH_SECONDS, LIST_COST_SHARE * census.took), KEPT_SECONDS)

    async def _kept_census(self) -> Census | None:
        """Another replica's census, if its shape is what GET /status answers (a release mid-roll may differ)."""
        if not self._shares_census:
            return None
        try:
            kept = await self._coordination.sessions_census.read(self._wall())
        except StoreUnavailable:
            return None
        if kept is not None:
            try:
                StatusSessions.model_validate(kept.sessions)
            except ValidationError:
                return None
        return kept

    async def _live(self) -> dict[str, str]:
        """The replicas whose heartbeat's lease runs, with their state (none with one process, or
        when the store does not answer: then nobody is called missing for it)."""
        replicas = getattr(self._coordination, "replicas", None)
        if replicas is None:
            return {}
        try:
            live: dict[str, str] = await replicas.live()
        except StoreUnavailable:
            return {}
        return live

    async def _eval_ids(self) -> set[str]:
        """The evals' active sessions; none when the listing does not answer (each counted as a caller's)."""
        if self._evals is None:
            return set()
        try:
            return await self._evals()
        except Exception as exc:  # the store: the sessions are still counted, evals among them
            log.info("status: evals' sessions not told apart (%s)", type(exc).__name__)
            return set()

    async def _pool(self) -> tuple[list[ReplicaPool], str | None]:
        """The region's reserve pool, and why it is only this replica's when the store does not answer
        (the pool then answers as one process would: dispatcher/store/forgiving.py)."""
        if self._reserve is None:
            return [], None
        views = await self._coordination.pool.views()
        if self._coordination.health().get("status", "ok") != "ok":
            return views, ("the store does not answer: the reserve shown is this replica's own "
                           "(GET /healthz says more)")
        return views, None

    def _reserve_of(self, views: list[ReplicaPool]) -> dict[str, Any]:
        release_of = self._reserve.releases.current_images() if self._reserve is not None else {}
        bots = [bot for view in views for bot in view.bots]
        by_state = Counter({"idle": 0, "warming": 0, "frozen": 0, "resuming": 0})
        by_state.update(bot.state for bot in bots)
        return {
            "enabled": self._reserve is not None and self._reserve.settings.enabled,
            "total": len(bots),
            "by_state": dict(by_state),
            "by_release": _counted(release_of.get(bot.image, RETIRING) for bot in bots),
        }

    def _cost(self, sessions: int, by_state: dict[str, int]) -> dict[str, Any]:
        running = sessions + sum(by_state.get(tier, 0) for tier in RUNNING_TIERS)
        frozen = by_state.get("frozen", 0)
        monthly = self._price.dollars_per_month if self._price is not None else None
        body: dict[str, Any] = {"running_machines": running, "frozen_machines": frozen}
        if monthly is None:
            return body | {"dollars_per_hour": None, "note": "not priced for this provider: "
                           "RESERVE_HOT_DOLLARS_PER_MONTH sets one machine's price (docs/reserve.md)"}
        hot = monthly / HOURS_PER_MONTH
        cold = (self._machines.frozen_form.frozen_dollars_per_month / HOURS_PER_MONTH
                if isinstance(self._machines, FrozenMachines) else 0.0)
        body |= {"dollars_per_hour": round(running * hot + frozen * cold, 4),
                 "machine_dollars_per_hour": round(hot, 5)}
        if self._machines.name == "local" and monthly == 0:
            body["note"] = "local processes cost nothing"
        return body

    def _regions(self, reserve_here: int) -> list[dict[str, Any]]:
        regions: list[dict[str, Any]] = [{"name": self._region, "here": True, "reachable": True,
                                          "reserve": reserve_here}]
        for name, peer in sorted(self._peers.by_name.items()):
            capacity = peer.capacity
            regions.append({"name": name, "here": False, "reachable": peer.reachable,
                            "reserve": capacity.idle + capacity.warming if capacity is not None else None})
        return regions


def _counted(values: Any) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))
