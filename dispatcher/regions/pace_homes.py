"""A carrier account's or a trunk's calls per second, held across every region, not once per region.

Each pace bucket (`twilio:<account>`, `telnyx:<account>`, `trunk:<name>`) has one home: the region
first in rendezvous order of the bucket's name (dispatcher/regions/home.py). The home takes turns
from its own store's bucket, as one region does; another region asks it for each turn, signed
(`POST /regions/pace`), within `ASK_SECONDS`, and never asks twice for one turn (an ask whose answer
never came may have spent one: it counts as spent). A home that cannot be asked (down, slow, 5xx,
401, an unsigned answer) is passed over for `REST_SECONDS`, and the asking region takes its turns
from its own store at its share of the pace (the rate ÷ the number of regions, bucket
`<bucket>@share`). So the sum never exceeds the pace while regions cannot talk: the home paces
only the share of the regions it hears from and that do not say they pace alone (`PACING_ALONE` in
their state), and a region that starts pacing alone waits `HANDOVER_SECONDS` and its longest wait
first (refused 429 meanwhile), the time the home takes to learn it and for the turns it already
gave at the full rate to pass. docs/phone.md ("Pace"), docs/regions.md.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.outbound.http_client import HttpClient
from dispatcher.regions.calls import REST_SECONDS
from dispatcher.regions.home import rendezvous_order
from dispatcher.regions.peers import ANSWER_SECONDS, POLL_SECONDS, Peer, Peers, region_client, signed_post
from dispatcher.regions.signing import RegionSigner
from dispatcher.store.coordination import CreateLimits

log = logging.getLogger("dispatcher.regions")

PACE_PATH = "/regions/pace"
PACING_ALONE = "pacing_alone"  # in a region's state: the homes it takes its share without, now
ASK_SECONDS = ANSWER_SECONDS  # a call waits this long at most on a home that hangs, once per REST_SECONDS
# How long a home takes to learn that a region paces alone: its poll that fails, or that reads the
# region's PACING_ALONE (one poll's interval, a poll in flight and the next).
HANDOVER_SECONDS = POLL_SECONDS + 2 * ANSWER_SECONDS
KINDS = ("twilio", "telnyx", "trunk")
MAX_NAME_CHARS = 64  # a trunk's name (sipedge/config.py MAX_TRUNK_NAME_CHARS); accounts' ids are shorter
MAX_PER_SECOND = 1000.0  # a trunk's `cps` bound
MAX_WAIT_SECONDS = 3600.0


@dataclass(frozen=True)
class PaceTurn:
    """A call's turn: `granted` after `wait` seconds (else refused, `wait` being what it would have
    waited); `by` says who paced it ("" as one region); `refusal` a refusal's own words, if any."""

    granted: bool
    wait: float
    by: str = ""
    refusal: str = ""


def pace_home(names: Mapping[str, str], bucket: str) -> str:
    return rendezvous_order(names, "pace", bucket)[0]


class RegionPaces:
    """Turns of the deployment's pace buckets: this region's store with one region, else as above."""

    def __init__(self, peers: Peers, limits: CreateLimits, client: HttpClient | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._peers = peers
        self._regions = peers.regions
        self._limits = limits
        self._signer = RegionSigner(self._regions)
        self._client = client
        self._clock = clock
        self._resting: dict[str, float] = {}  # a home that did not answer → when it is asked again
        self._alone_since: dict[str, float] = {}  # a home passed over → since when (until it answers)
        self._alone_until: dict[str, float] = {}  # a home → when this region's last share turn is due
        self._alone_at: dict[str, frozenset[str]] = {}  # a peer → the homes it said it paces alone from
        if self._regions.several:
            peers.answer_listeners.append(self._heard)

    async def turn(self, bucket: str, per_second: float, max_wait: float) -> PaceTurn:
        if not self._regions.several:
            turn = await self._limits.create_limit(bucket, per_second, 1).cold(max_wait)
            return PaceTurn(turn.granted, turn.wait)
        home = pace_home(self._regions.urls, bucket)
        if home == self._regions.here:
            granted, wait = await self.serve(bucket, per_second, max_wait)
            return PaceTurn(granted, wait, f"home {home}")
        peer = self._peers.peer(home)
        # Asked whatever its polls say (a poll slow under load is no reason to pace alone); passed over
        # only for REST_SECONDS after an ask of its own failed.
        if peer is not None and self._resting.get(home, 0.0) <= self._clock():
            answered = await self._ask(peer, bucket, per_second, max_wait)
            if answered is not None:
                self._alone_since.pop(home, None)
                return PaceTurn(*answered, by=f"home {home}")
        return await self._share(bucket, per_second, max_wait, home)

    async def serve(self, bucket: str, per_second: float, max_wait: float) -> tuple[bool, float]:
        """As the bucket's home: a turn at the share of the pace of every region that asks here (this
        one, and each peer heard from that does not pace alone from it)."""
        asking = 1 + sum(1 for peer in self._peers.by_name.values()
                         if peer.reachable and self._regions.here not in self._alone_at.get(peer.name, ()))
        rate = per_second * asking / len(self._regions.urls)
        turn = await self._limits.create_limit(bucket, rate, 1).cold(max_wait)
        return turn.granted, turn.wait

    def alone(self) -> list[str]:
        """The homes this replica takes its share without, now or for share turns still due."""
        now = self._clock()
        return sorted({*self._alone_since, *(home for home, until in self._alone_until.items() if until > now)})

    async def _ask(self, peer: Peer, bucket: str, per_second: float, max_wait: float) -> tuple[bool, float] | None:
        self._client = self._client or region_client(ASK_SECONDS)
        data, why = await signed_post(self._client, self._signer, self._regions, peer.name, peer.url, PACE_PATH,
                                      {"bucket": bucket, "per_second": per_second, "max_wait": max_wait},
                                      ASK_SECONDS)
        granted = data.get("granted") if isinstance(data, Mapping) else None
        wait = data.get("wait") if isinstance(data, Mapping) else None
        # A turn past the longest wait asked for is no answer (a call would sleep on it), nor a refusal's
        # wait past any bound (its Retry-After).
        if isinstance(granted, bool) and _number(wait, 0.0, max_wait + 0.01 if granted else MAX_WAIT_SECONDS):
            return granted, float(wait)  # type: ignore[arg-type]  # a number, checked
        self._resting[peer.name] = self._clock() + REST_SECONDS  # logged once per rest, not once per call
        log.warning("regions: %s, home of the pace %s, did not give a turn (%s): this region takes its share "
                    "(%g calls a second) alone for %g s", peer.name, bucket, why,
                    per_second / len(self._regions.urls), REST_SECONDS)
        return None

    async def _share(self, bucket: str, per_second: float, max_wait: float, home: str) -> PaceTurn:
        now = self._clock()
        since = self._alone_since.setdefault(home, now)
        by = f"share of this region while home {home} does not answer"
        embargo = since + HANDOVER_SECONDS + max_wait - now
        if embargo > 0:  # the home's turns at the full rate may still be due, and it has not heard yet
            return PaceTurn(False, embargo, by, f"its home region {home} does not answer: this region takes its "
                            f"share of the pace alone in {embargo:.1f} s")
        share = per_second / len(self._regions.urls)
        turn = await self._limits.create_limit(f"{bucket}@share", share, 1).cold(max_wait)
        if turn.granted:
            self._alone_until[home] = max(self._alone_until.get(home, 0.0), now + turn.wait)
        return PaceTurn(turn.granted, turn.wait, by)

    async def _heard(self, peer: Peer, answer: Mapping[str, Any]) -> None:
        homes = answer.get(PACING_ALONE)
        self._alone_at[peer.name] = frozenset(str(h) for h in homes[:64]) if isinstance(homes, list) else frozenset()

    async def offered(self, sender: str, payload: object) -> dict[str, Any]:
        """As the home: the asking region's turn (`POST /regions/pace`), `{"granted", "wait"}`."""
        granted, wait = await self.serve(*self.parse_ask(payload))
        return {"granted": granted, "wait": round(wait, 3)}

    def parse_ask(self, data: object) -> tuple[str, float, float]:
        """A home's request body: (bucket, calls a second, longest wait), or 400; 409 where this region is
        not the bucket's home (REGIONS differ: the asker paces its share alone rather than make two homes)."""
        bucket = data.get("bucket") if isinstance(data, Mapping) else None
        rate = data.get("per_second") if isinstance(data, Mapping) else None
        wait = data.get("max_wait") if isinstance(data, Mapping) else None
        kind, _, name = bucket.partition(":") if isinstance(bucket, str) else ("", "", "")
        if (kind not in KINDS or not 0 < len(name) <= MAX_NAME_CHARS or not name.isprintable()
                or not _number(rate, 0.0, MAX_PER_SECOND) or rate == 0 or not _number(wait, 0.0, MAX_WAIT_SECONDS)):
            raise ApiError(400, "invalid_request", "expected {\"bucket\": \"twilio|telnyx|trunk:<name of at most "
                           f"{MAX_NAME_CHARS} characters>\", \"per_second\": (0, {MAX_PER_SECOND:g}], "
                           f"\"max_wait\": [0, {MAX_WAIT_SECONDS:g}]}}")
        if pace_home(self._regions.urls, str(bucket)) != self._regions.here:
            raise ApiError(409, "not_pace_home", "this region is not the pace's home by its REGIONS: make every "
                           "region's REGIONS the same")
        return str(bucket), float(rate), float(wait)  # type: ignore[arg-type]  # checked numbers above

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


def _number(value: object, low: float, high: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and low <= value <= high
