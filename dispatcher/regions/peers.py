"""Every other region as this one sees it: whether it answers, its round trip, what it can start.

Each peer's `GET /regions/state` is read every `POLL_SECONDS`, signed, within `ANSWER_SECONDS`: a
region that does not answer in time is unreachable at once (requests for its sessions are refused
503 `region_unreachable` from then on, never left hanging), and reachable again with its next
answer. The round trip is an exponentially weighted mean of the polls', so "nearest" follows the
network as it is now. What a peer's listing of the regions contradicts in this one's is a
conflict (refused at start-up, logged after); a region one side lists and the other does not yet
is a warning only, so a region can be added one deploy at a time. docs/regions.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.outbound.http_client import DEFAULT_CONNECTIONS, HttpClient, HttpError
from dispatcher.regions.config import Regions, parse_regions
from dispatcher.regions.signing import RegionSigner, answer_is_signed
from dispatcher.settings import SettingsError

log = logging.getLogger("dispatcher.regions")

STATE_PATH = "/regions/state"
POLL_SECONDS = 0.5  # a region that stops answering is known unreachable within POLL + ANSWER
ANSWER_SECONDS = 1.0
RTT_WEIGHT = 0.3  # the newest poll's share of the round trip's running mean
MAX_ANSWER_BYTES = 64 * 1024  # a region's answer is a few hundred bytes
STATE_ANSWER_BYTES = 256 * 1024  # its state with up to 500 keys' budget use (dispatcher/regions/budget_use.py)


def region_client(timeout: float = ANSWER_SECONDS, max_answer_bytes: int = MAX_ANSWER_BYTES,
                  connections: int = DEFAULT_CONNECTIONS) -> HttpClient:
    """For what regions ask each other: no redirect followed (a 3xx is an answer, never a request
    sent on), the answer read as sent and bounded."""
    return HttpClient(timeout=timeout, connect_timeout=timeout, follow_redirects=False,
                      max_answer_bytes=max_answer_bytes, connections=connections)


async def signed_post(client: HttpClient, signer: RegionSigner, regions: Regions, peer: str, url: str, path: str,
                      payload: object, timeout: float = ANSWER_SECONDS) -> tuple[Any, str]:
    """What `peer` (at `url`) answered a signed POST of `payload`, as JSON, if it answered 200 signed;
    else None, and a few words on why."""
    return await signed_request(client, signer, regions, peer, url, "POST", path, json.dumps(payload).encode(),
                                timeout)


async def signed_get(client: HttpClient, signer: RegionSigner, regions: Regions, peer: str, url: str, path: str,
                     timeout: float = ANSWER_SECONDS) -> tuple[Any, str]:
    """What `peer` (at `url`) answered a signed GET of `path`, as `signed_post` reads it."""
    return await signed_request(client, signer, regions, peer, url, "GET", path, b"", timeout)


async def signed_request(client: HttpClient, signer: RegionSigner, regions: Regions, peer: str, url: str,
                         method: str, path: str, body: bytes, timeout: float) -> tuple[Any, str]:
    headers = signer.headers(peer, method, path, body)
    if body:
        headers["content-type"] = "application/json"
    try:
        answer = await client.request(method, url + path, content=body or None, headers=headers, timeout=timeout)
        if answer.status_code != 200 or not answer_is_signed(regions.secrets, headers, answer.headers,
                                                             answer.content):
            return None, f"answered {answer.status_code}"
        return answer.json(), "answered"
    except (HttpError, ValueError) as exc:
        return None, type(exc).__name__


@dataclass(frozen=True)
class Capacity:
    """What a region advertises: whether it can start warm, and how much room it has."""

    warm: Mapping[str, bool] = field(default_factory=dict)  # by transport: an idle or frozen bot now
    idle: int = 0  # idle bots across the region's replicas
    room: int = 0  # sessions it may still start under its cap
    cold_start_seconds: float = math.inf  # the wait it tells a cold start now
    demand_per_minute: float = 0.0  # the starts its planner expects now
    refill_seconds: float = math.inf  # the lead its planner sizes over: how soon a bot it lends is replaced
    warming: int = 0  # its reserve bots booting

    def to_json(self) -> dict[str, Any]:
        return {"warm": dict(self.warm), "idle": self.idle, "room": self.room,
                "cold_start_seconds": None if math.isinf(self.cold_start_seconds) else self.cold_start_seconds,
                "demand_per_minute": round(self.demand_per_minute, 3),
                "refill_seconds": None if math.isinf(self.refill_seconds) else round(self.refill_seconds, 3),
                "warming": self.warming}

    @classmethod
    def from_json(cls, data: Any) -> Capacity:
        if not isinstance(data, Mapping):
            raise ValueError("capacity is not an object")
        warm = data.get("warm", {})
        cold = data.get("cold_start_seconds")
        demand = float(data.get("demand_per_minute", 0.0))
        refill = data.get("refill_seconds")
        refill = math.inf if refill is None else float(refill)
        if not (math.isfinite(demand) and refill >= 0 and not math.isnan(refill)):
            raise ValueError("demand_per_minute or refill_seconds is not a number")
        return cls(
            warm={str(k): bool(v) for k, v in warm.items()} if isinstance(warm, Mapping) else {},
            idle=max(0, int(data.get("idle", 0))),
            room=max(0, int(data.get("room", 0))),
            cold_start_seconds=math.inf if cold is None else max(0.0, float(cold)),
            demand_per_minute=max(0.0, demand),
            refill_seconds=refill,
            warming=max(0, int(data.get("warming", 0))),
        )


@dataclass
class Peer:
    name: str
    url: str
    reachable: bool = False
    round_trip: float | None = None  # seconds, running mean
    capacity: Capacity | None = None
    answered_at: float | None = None
    problem: str | None = None  # why it is not reachable, or what it contradicts
    # Its last answered state, set with `reachable`: what it says of itself (a route's version) is read with
    # it, never after listeners that may await (one in between would see it reachable but unsaid).
    state: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "reachable": self.reachable,
                "round_trip_ms": None if self.round_trip is None else round(self.round_trip * 1000, 1),
                "capacity": self.capacity.to_json() if self.capacity is not None else None,
                "problem": self.problem}


def contradictions(regions: Regions, peer: str, answer: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(conflicts, warnings) between this region's `REGIONS` and what `peer` answered."""
    name = answer.get("region")
    if name != peer:
        return [f"REGIONS names {regions.urls[peer]} as {peer}, but that dispatcher is REGION={name}"], []
    try:
        theirs = parse_regions(str(answer.get("regions", "")))
    except SettingsError as exc:
        return [f"{peer}'s REGIONS is invalid: {exc}"], []
    conflicts = [f"REGIONS disagrees with {peer}'s on {other}: {url} here, {theirs[other]} there"
                 for other, url in sorted(regions.urls.items()) if other in theirs and theirs[other] != url]
    warnings = [f"{peer}'s REGIONS does not list {other} yet" for other in sorted(regions.urls) if other not in theirs]
    warnings += [f"{peer}'s REGIONS lists {other}, which this region's does not" for other in sorted(theirs)
                 if other not in regions.urls]
    return conflicts, warnings


class Peers:
    """The other regions, polled; one instance per dispatcher (one region: no peers, no polling)."""

    def __init__(self, regions: Regions, client: HttpClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.regions = regions
        self._signer = RegionSigner(regions)
        # Built only where there is a peer to poll, and here, before the event loop runs (the import of its
        # HTTP library would stall the loop): a single region (every local dispatcher) never loads it.
        self._client = client or (region_client(max_answer_bytes=STATE_ANSWER_BYTES) if regions.peers else None)
        self._clock = clock
        self.by_name: dict[str, Peer] = {name: Peer(name, url) for name, url in regions.peers.items()}
        self._warned: set[str] = set()
        # Told each answer a peer signed (its releases' traffic is read from it: dispatcher/regions/releases.py).
        self.answer_listeners: list[Callable[[Peer, Mapping[str, Any]], Awaitable[None]]] = []

    def peer(self, name: str) -> Peer | None:
        return self.by_name.get(name)

    def nearest_first(self) -> list[Peer]:
        """Reachable peers, nearest (lowest measured round trip) first."""
        live = [peer for peer in self.by_name.values() if peer.reachable and peer.round_trip is not None]
        return sorted(live, key=lambda peer: (peer.round_trip, peer.name))

    async def poll(self, peer: Peer) -> list[str]:
        """Read one peer's state; the conflicts it shows (an unreachable peer shows none)."""
        path = STATE_PATH
        started = self._clock()
        if self._client is None:
            raise LookupError(f"{peer.name} is not a peer of this region's REGIONS: there is nothing to poll")
        headers = self._signer.headers(peer.name, "GET", path)
        try:
            answer = await self._client.request("GET", peer.url + path, timeout=ANSWER_SECONDS, headers=headers)
        except HttpError as exc:
            return self._lost(peer, f"no answer within {ANSWER_SECONDS:g} s ({exc})")
        if answer.status_code != 200 or not answer_is_signed(self.regions.secrets, headers, answer.headers,
                                                             answer.content):
            # Whoever answers at a peer's URL without the secret is not that region: not believed.
            return self._lost(peer, f"answered {answer.status_code} without a region's signature")
        try:
            data = answer.json()
        except ValueError:
            data = None
        if not isinstance(data, Mapping):
            return self._lost(peer, "answered no JSON object")
        elapsed = self._clock() - started
        conflicts, warnings = contradictions(self.regions, peer.name, data)
        for warning in warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning("regions: %s", warning)
        try:
            capacity = Capacity.from_json(data.get("capacity", {}))
        except (TypeError, ValueError) as exc:
            return self._lost(peer, f"advertised no valid capacity ({exc})")
        if conflicts:
            peer.reachable, peer.problem = False, "; ".join(conflicts)
            return conflicts
        peer.round_trip = elapsed if peer.round_trip is None else (
            RTT_WEIGHT * elapsed + (1 - RTT_WEIGHT) * peer.round_trip)
        if not peer.reachable:
            log.info("regions: %s answers (round trip %.0f ms)", peer.name, elapsed * 1000)
        peer.reachable, peer.capacity, peer.answered_at, peer.problem, peer.state = (
            True, capacity, self._clock(), None, data)
        for listener in self.answer_listeners:
            try:
                await listener(peer, data)
            except Exception:
                log.exception("regions: reading %s's answer failed", peer.name)
        return []

    def _lost(self, peer: Peer, problem: str) -> list[str]:
        if peer.reachable or peer.answered_at is None and peer.problem is None:
            log.warning("regions: %s is unreachable: %s", peer.name, problem)
        peer.reachable, peer.problem = False, problem
        return []

    async def poll_all(self) -> list[str]:
        results = await asyncio.gather(*(self.poll(peer) for peer in self.by_name.values()))
        return [conflict for conflicts in results for conflict in conflicts]

    async def run(self) -> None:
        """Poll every peer every `POLL_SECONDS`, for the dispatcher's life."""
        if not self.by_name:
            return
        logged: set[str] = set()
        while True:
            for conflict in await self.poll_all():
                if conflict not in logged:
                    logged.add(conflict)
                    log.error("regions: %s (fix REGIONS so every region lists the same URLs)", conflict)
            await asyncio.sleep(POLL_SECONDS)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


async def conflicts_at_start(regions: Regions) -> list[str]:
    """What the peers that answer now contradict in `REGIONS` (a peer that does not answer yet is no
    reason to refuse: it may be starting too)."""
    peers = Peers(regions)
    try:
        return await peers.poll_all()
    finally:
        await peers.aclose()
