"""Three regions a day apart by eight hours: capacity that follows the sun, or three deployments.

    uv run --all-groups python -m bench.reserve_sim --regions 3 --stack aws-prod --levels 60 200 --jobs 2

Each region is bench/reserve_sim_model.py's deployment (its own traffic with its own 5× bursts, its
day peaking at 14:00 local: eu 14:00, us 22:00, ap 06:00 UTC; its own forecast, planner, provider
create limit and session cap), on one clock. The modes:
- `separate`: three deployments that know nothing of each other (no spill-over, no leaning);
- `spill`: regions spill over (dispatcher/regions/spill.py), each planner sized alone;
- `sun`: spill-over and each planner leaning on its busier neighbours (dispatcher/reserve/neighbours.py).
A start that finds no warm bot at home (or no room under its cap) goes to the nearest region (by
round trip: eu-us 75 ms, eu-ap 120 ms, us-ap 150 ms) with room and a warm bot; its callers give
`maxWaitSeconds` 3, so it never waits for a cold start elsewhere. It is ready one round trip later
than a claim at home, and every turn of its session crosses that round trip. It counts toward the
demand of the region it arrived at, as the dispatcher counts it, never toward the lender's.
Each planner reads the others' state as of their last tick, or, given polls (`poll_seconds`, the
fleet emulator's comparison), as their last answers said (the dispatcher polls every 0.5 s).
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.reserve_sim_model import RUNNING, GivenColdStarts, Result, Simulation
from bench.reserve_sim_providers import HOURS_PER_MONTH, Prices, Provider
from bench.reserve_sim_traffic import DAY_START_EPOCH, Day, DayShape
from dispatcher.reserve.neighbours import Neighbour
from dispatcher.reserve.planner import PlannerSettings
from dispatcher.reserve.policy import ReserveSettings
from dispatcher.reserve.sizer import FleetSizer

PEAK_HOURS = {"eu": 14.0, "us": 22.0, "ap": 6.0}  # UTC: 14:00 local in each, eight hours apart
ROUND_TRIPS = {frozenset(("eu", "us")): 0.075, frozenset(("us", "ap")): 0.150, frozenset(("eu", "ap")): 0.120}
MODES = ("separate", "spill", "sun")


class Region(Simulation):
    """One region's deployment, its events on the world's clock."""

    def __init__(self, world: World, index: int, name: str, *args: Any, **kwargs: Any) -> None:
        self.world, self.index, self.name = world, index, name
        self.spilled_out = 0
        self.spill_round_trips: list[float] = []
        self.spill_refused = 0  # spilled to a peer last seen warm, whose warm bots were gone by then
        self.seen: dict[int, bool] = {}  # peer index → warm with room, as its last answer to a poll said
        self.figures: dict[int, Neighbour] = {}  # peer index → its figures, as that answer gave them
        super().__init__(*args, **kwargs)

    def handle(self, now: float, kind: str, ref: int) -> None:
        if kind == "poll":
            self.world.poll(self, now)
        elif kind == "answer":
            self.world.answer(self, now, ref)
        elif kind == "seen":  # ref: the answer's index in the world's answers
            peer, warm, figures = self.world.answers[ref]
            self.seen[peer], self.figures[peer] = warm, figures
        elif kind == "relayed":  # ref: start × regions + the region it spilled from, reaching this one
            self.world.relayed(self, now, self.world.regions[ref % len(self.world.regions)],
                               ref // len(self.world.regions))
        elif kind == "wake":
            self.wake(now)
        elif kind == "again":  # start `ref`, refused here: counted in the demand once, as the dispatcher counts it
            self.place(now, ref, patient=False)
        elif kind == "restart":  # start `ref`, refused where it spilled: its caller asks here again
            # Counted in this region's demand again, as the dispatcher counts it: once when it was
            # relayed (spilled away), once more now that it launches here.
            self.sizer.arrived(DAY_START_EPOCH + now)
            self.place(now, ref, patient=False)
        else:
            super().handle(now, kind, ref)

    def at(self, when: float, kind: str, ref: int = -1) -> None:
        self.world.push(when, self.index, kind, ref)

    def spill(self, now: float, n: int) -> bool:
        if not self.world.spills:
            return False
        if self.world.spill(self, now, n):
            return True
        if self.world.refusal_seconds is None or not self.room():
            return False
        # No warm bot here or at any peer it knows of: refused (`cold_start_too_slow`), its caller
        # asks here again without patience once the refusal is back, and may find one landed meanwhile.
        self.at(now + self.world.refusal_seconds, "again", n)
        return True

    def leaning(self) -> dict[str, Any]:
        return {"region": self.name, "neighbours": self.world.neighbours(self)} if self.world.leans else {}

    def room(self) -> bool:
        return self.max_sessions is None or self.sessions() < self.max_sessions


class World:
    def __init__(self, mode: str, provider: Provider, settings: ReserveSettings, planner: PlannerSettings,
                 per_minute: float, *, seed: int, seconds: float, history_days: int, max_sessions: int | None,
                 names: Sequence[str] = tuple(PEAK_HOURS), days: Sequence[Day] | None = None,
                 cold_starts: Sequence[GivenColdStarts] | None = None, poll_seconds: float | None = None,
                 refusal_seconds: float | None = None, deploy_gap_seconds: float = 0.0,
                 head_starts: Sequence[float] | None = None, ready_at_peer: bool = False, **options: Any) -> None:
        """`days`: each region's starts instead of its seasonal day's; `cold_starts`: each region's
        cold starts (GivenColdStarts) instead of its own draws; `poll_seconds`: a start spills by
        its peers' answers to polls this far apart (after every answer of the last: the dispatcher's
        `Peers.run`), each read a one-way trip after it was asked and seen a round trip after,
        instead of by the peers' state at once (None); `refusal_seconds`: a start refused at home for
        want of a warm bot anywhere is asked there again this much later (its caller's round trip),
        instead of launching cold at once (None); `options`: the Simulation's other settings,
        alike in every region (the fleet emulator's runs: no deploy, no hand-over);
        `deploy_gap_seconds`: the regions deploy one after another this far apart, from noon (0: at once);
        `head_starts`: how long before the first start each region's planner and polls begin (the
        Simulation's `head_start`; the fleet emulator's dispatchers run seconds before their callers);
        `ready_at_peer`: a spilled start is ready when its bot is, a one-way trip after it left (the
        fleet emulator times it so), not when its caller hears so, a round trip after (the days' figures)."""
        self.spills, self.leans = mode != "separate", mode == "sun"
        self.poll_seconds, self.refusal_seconds = poll_seconds, refusal_seconds
        self.ready_at_peer = ready_at_peer
        self.events: list[tuple[float, int, int, str, int]] = []
        self.answers: list[tuple[int, bool, Neighbour]] = []  # (peer, warm with room, its figures) per answer
        self.seq = itertools.count()
        self.regions = [
            Region(self, i, name, provider, settings, planner, per_minute, seed=seed * 10 + i,
                   shape=DayShape(name, 0.6, PEAK_HOURS[name], 0.5), seconds=seconds, history_days=history_days,
                   max_sessions=max_sessions, day=days[i] if days is not None else None,
                   cold_starts=cold_starts[i] if cold_starts is not None else None,
                   deploy_at=seconds / 2 + i * deploy_gap_seconds,
                   head_start=head_starts[i] if head_starts is not None else 0.0, **options)
            for i, name in enumerate(names)]

    def push(self, when: float, region: int, kind: str, ref: int) -> None:
        heapq.heappush(self.events, (when, next(self.seq), region, kind, ref))

    def run(self) -> list[Result]:
        for region in self.regions:
            region.schedule()
            if self.poll_seconds is not None and self.spills:
                self.push(-region.head_start, region.index, "poll", -1)
        while self.events:
            now, _, index, kind, ref = heapq.heappop(self.events)
            for region in self.regions:  # a spill moves another region's machine
                region.account(now)
            self.regions[index].handle(now, kind, ref)
        for region in self.regions:
            region.account(region.seconds)
        return [region.result for region in self.regions]

    @staticmethod
    def round_trip(a: Region, b: Region) -> float:
        return ROUND_TRIPS[frozenset((a.name, b.name))]

    def poll(self, region: Region, now: float) -> None:
        """`region` asks every peer at once; it asks again `poll_seconds` after the slowest answer."""
        peers = [r for r in self.regions if r is not region]
        for there in peers:
            self.push(now + self.round_trip(region, there) / 2, region.index, "answer", there.index)
        assert self.poll_seconds is not None
        slowest = max(self.round_trip(region, there) for there in peers)
        if now + slowest + self.poll_seconds < region.seconds:
            self.push(now + slowest + self.poll_seconds, region.index, "poll", -1)

    def answer(self, region: Region, now: float, peer: int) -> None:
        """Peer `peer` answers `region`'s poll now, with its state now; `region` reads it a one-way trip later."""
        there = self.regions[peer]
        # Warm as the dispatcher answers it (`capacity`: `Reserve.can_claim`): a hot bot or a frozen one.
        warm = bool(there.hot or there.frozen) and there.room()
        self.answers.append((peer, warm, self.figures(region, there)))
        self.push(now + self.round_trip(region, there) / 2, region.index, "seen", len(self.answers) - 1)

    def spill(self, origin: Region, now: float, n: int) -> bool:
        """The nearest region with room and a warm bot takes start `n`; none: it stays home. With
        polls, the nearest seen so: the start is relayed there, and that region claims for it when it
        gets there, a one-way trip later (`relayed`)."""
        for there in sorted((r for r in self.regions if r is not origin), key=lambda r: self.round_trip(origin, r)):
            if self.poll_seconds is not None:
                if not origin.seen.get(there.index, False):
                    continue
                self.push(now + self.round_trip(origin, there) / 2, there.index, "relayed",
                          n * len(self.regions) + origin.index)
                return True
            if not (there.hot and there.room()):
                continue
            machine = there.machines[there.take(there.hot, there.hot_since)]
            there.move(machine, "busy")
            there.wake(now)  # a peer's claim wakes the lender's reserve (`claim_here`)
            # Counted once, where its caller is (the arrival already was): not by the lender.
            rtt = self.round_trip(origin, there)
            origin.result.hot_claims += 1
            heard = rtt / 2 if self.ready_at_peer else rtt
            origin.result.time_to_ready.append(now - origin.day.arrival_times[n] + origin.claim_seconds + heard)
            there.at(now + origin.claim_seconds + rtt + origin.day.lengths[n], "end", machine.machine_id)
            origin.spilled_out += 1
            origin.spill_round_trips.append(rtt)
            return True
        return False

    def relayed(self, there: Region, now: float, origin: Region, n: int) -> None:
        """Start `n`, spilled from `origin`, reaches `there` now (the dispatcher relays it, and the
        region it reaches claims for it then: dispatcher/sessions/service.py `start`, warm only). A
        hot bot there takes it, else a frozen one thawed (`Reserve.launch`: the claim, then the frozen
        tier); none left since its answer: refused, and its caller asks at home again (without
        patience) when the refusal is back, a one-way trip later."""
        one_way = self.round_trip(origin, there) / 2
        arrived = origin.day.arrival_times[n]
        if there.hot and there.room():
            machine = there.machines[there.take(there.hot, there.hot_since)]
            origin.result.hot_claims += 1
            after = origin.claim_seconds
        elif there.frozen and there.room():
            machine = there.machines[there.take(there.frozen, there.frozen_since)]
            origin.result.frozen_claims += 1
            after = there.provider.resume(there.draw) + there.redial_seconds + origin.claim_seconds
        else:
            origin.spill_refused += 1
            origin.at(now + one_way, "restart", n)  # refused before its reserve is asked: no wake
            return
        there.move(machine, "busy")  # its thaw counted as busy: running time either way
        there.at(now + after - origin.claim_seconds, "wake")  # its reserve wakes once the claim returns
        # Counted once, where its caller is (the arrival already was): not by the lender.
        origin.result.time_to_ready.append(now - arrived + after + (0.0 if self.ready_at_peer else one_way))
        there.at(now + after + origin.day.lengths[n], "end", machine.machine_id)
        origin.spilled_out += 1
        origin.spill_round_trips.append(2 * one_way)

    def neighbours(self, here: Region) -> list[Neighbour]:
        """The others as `here` knows them: with polls, as their last answers said (the dispatcher's
        planner reads what `Peers` polled, dispatcher/regions/capacity.py); else as their last tick
        left them, at once."""
        if self.poll_seconds is not None:
            return [here.figures[there.index] for there in self.regions
                    if there is not here and there.index in here.figures]
        return [self.figures(here, there) for there in self.regions if there is not here]

    def figures(self, here: Region, there: Region) -> Neighbour:
        """What `/regions/state` would say of `there` now."""
        demand = getattr(there.sizer, "last_demand", None)
        assert isinstance(there.sizer, FleetSizer)
        return Neighbour(there.name, True, self.round_trip(here, there), len(there.hot),
                         demand.rate if demand is not None else 0.0, there.sizer.lead_seconds, there.reserve_warming)


@dataclass(frozen=True)
class RegionsRow:
    mode: str
    per_minute: float  # each region's weekday mean outside bursts
    starts: int
    warm: float
    refused: int
    p50: float
    p95: float
    idle_share: float
    mean_hot: float
    hot_month: float
    spilled: float  # share of starts served outside the region they arrived at
    spill_ms: float  # mean round trip those sessions carry
    added_ms: float  # the same over every session: share × round trip
    peak_sessions: int = 0  # the most sessions any one region ran at once: what its cap must allow


def summarise_regions(mode: str, per_minute: float, results: list[Result], regions: list[Region],
                      prices: Prices) -> RegionsRow:
    starts = sum(r.arrivals for r in results)
    refused = sum(r.refused + r.refused_cap for r in results)
    ordered = sorted(t for r in results for t in r.time_to_ready) + [math.inf] * refused

    def percentile(p: float) -> float:
        return ordered[min(len(ordered) - 1, math.ceil(p * len(ordered)) - 1)] if ordered else math.nan

    hot = sum(r.machine_seconds["hot"] for r in results)
    running = sum(r.machine_seconds[s] for r in results for s in RUNNING)
    seconds = results[0].seconds
    trips = [t for region in regions for t in region.spill_round_trips]
    spilled = len(trips) / max(1, starts)
    spill_ms = 1000 * sum(trips) / len(trips) if trips else 0.0
    return RegionsRow(mode, per_minute, starts, sum(r.warm for r in results) / max(1, starts), refused,
                      percentile(0.5), percentile(0.95), hot / running if running else 0.0, hot / seconds,
                      hot * HOURS_PER_MONTH / seconds * prices.running_per_hour, spilled, spill_ms, spilled * spill_ms,
                      max(r.peak_sessions for r in results))


HEADER = ("mode", "/min each", "starts", "warm", "refused", "p50 s", "p95 s", "idle", "hot idle",
          "hot $/mo", "spilled", "spilled RTT", "added per session", "peak sessions")


def regions_header() -> str:
    return "| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER)


def regions_line(r: RegionsRow) -> str:
    def secs(value: float) -> str:
        return "never" if math.isinf(value) else f"{value:.1f}"
    cells = (r.mode, f"{r.per_minute:g}", str(r.starts), f"{r.warm:.1%}", str(r.refused), secs(r.p50), secs(r.p95),
             f"{r.idle_share:.1%}", f"{r.mean_hot:.1f}", f"${r.hot_month:,.0f}", f"{r.spilled:.2%}",
             f"{r.spill_ms:.0f} ms", f"{r.added_ms:.2f} ms", str(r.peak_sessions))
    return "| " + " | ".join(cells) + " |"


@dataclass(frozen=True)
class RegionsRun:
    mode: str
    regions: int
    provider: Provider
    settings: ReserveSettings
    planner: PlannerSettings
    per_minute: float
    seed: int
    hours: float
    history_days: int
    max_sessions: int | None
    prices: Prices
    deploy_gap_seconds: float = 0.0
    wakes: bool = True  # plan after every claim and hello, as the dispatchers' reserves do; False: on the tick only

    def __call__(self) -> RegionsRow:
        world = World(self.mode, self.provider, self.settings, self.planner, self.per_minute, seed=self.seed,
                      seconds=self.hours * 3600, history_days=self.history_days, max_sessions=self.max_sessions,
                      names=tuple(PEAK_HOURS)[:self.regions], deploy_gap_seconds=self.deploy_gap_seconds,
                      wakes=self.wakes)
        results = world.run()
        return summarise_regions(self.mode, self.per_minute, results, world.regions, self.prices)
