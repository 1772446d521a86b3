"""The releases' traffic across regions: an operator's change (or the automatic rollback's) made in
one region reaches every other, and the newest `version` wins everywhere.

Two ways, so that neither alone has to be perfect:

- **pushed**: each replica that sees a new traffic made in its own region posts it, signed, to
  every peer (`POST /regions/releases`), at once, retried a few times while the peer does not
  answer (dispatcher/regions/pushing.py). A peer stores it when it is newer than what it holds
  (`LiveReleases.adopt`, on the terms of dispatcher/releases/adoption.py), answers 409
  `stale_release_version` when it holds a newer one, 401 to whatever no region signed, and 422 to
  a change its signer says another region made.
- **pulled**: every region's signed state (`GET /regions/state`, read by each peer twice a second)
  carries its traffic, adopted on the same rule. So a region that was unreachable during a change
  gets it with its first answered poll, and one that starts reads its peers before it serves.

The deployment's own changes (the first configuration, a release its stack added or dropped) stay
in their region: each region reconciles its own stack's list, and regions whose lists differ (one
deployed before the other) would otherwise undo each other's reconciliation back and forth.
docs/regions.md ("Releases across regions").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from dispatcher.errors import ApiError
from dispatcher.observability.log_text import shown
from dispatcher.outbound.http_client import HttpClient
from dispatcher.regions.peers import ANSWER_SECONDS, Peer, Peers
from dispatcher.regions.pushing import Pushes
from dispatcher.regions.signing import SKEW_SECONDS
from dispatcher.releases.live import LiveReleases
from dispatcher.releases.traffic import DEPLOYMENT, Traffic, Version
from dispatcher.store.unavailable import StoreUnavailable

log = logging.getLogger("dispatcher.regions")

RELEASES_PATH = "/regions/releases"
STATE_FIELD = "releases"  # the traffic's field in a region's state answer
CATCH_UP_SECONDS = 2 * ANSWER_SECONDS  # at start-up: the peers' answers and this region's store, at most this
# A change is versioned by its region's clock when it was made, which signed requests already keep
# within SKEW_SECONDS of this one's: a version further ahead is no honest change, and taken it would
# outrank every change made anywhere until the clocks caught up with it.
AHEAD_SECONDS = SKEW_SECONDS


def travels(traffic: Traffic) -> bool:
    """Whether this traffic goes to other regions: a person's or the automatic rollback's change."""
    return traffic.changed_by != DEPLOYMENT


class RegionalReleases:
    def __init__(self, peers: Peers, releases: LiveReleases, client: HttpClient | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._peers = peers
        self._clock = clock
        self._regions = peers.regions
        self._releases = releases
        self._pushes = Pushes(peers, client)
        self._refused: Version | None = None  # the last polled change refused here (warned about once)
        if self._regions.several:
            releases.listeners.append(self.changed)
            peers.answer_listeners.append(self.polled)

    def changed(self, traffic: Traffic) -> None:
        """A new traffic at this replica: pushed to every peer when it was made in this region."""
        if not travels(traffic) or traffic.version[1] != self._regions.here:
            return
        self._pushes.to_every_peer(RELEASES_PATH, {"traffic": traffic.to_json()},
                                   f"the releases' change {list(traffic.version)}")

    async def offered(self, sender: str, payload: object) -> dict[str, Any]:
        """A peer's push, `sender` as its signature names it: stored when newer and acceptable here
        (dispatcher/releases/adoption.py); else a clear refusal naming what this region holds."""
        record = payload.get("traffic") if isinstance(payload, Mapping) else None
        traffic = Traffic.from_json(record)
        if traffic is None or not travels(traffic):
            raise ApiError(422, "invalid_release_record", 'send {"traffic": <a change a person or the automatic '
                           "rollback made: weights adding up to 100, stable, version>}")
        if traffic.version[1] != sender:
            raise ApiError(422, "invalid_release_record", f"a region pushes the changes made in it: this one was "
                           f"signed by {sender} but its version names {shown(traffic.version[1])!r}")
        if (ahead := self._ahead(traffic)) > AHEAD_SECONDS:
            raise ApiError(422, "invalid_release_record", f"its version is {ahead:.0f} s ahead of this region's "
                           f"clock (at most {AHEAD_SECONDS:.0f} s is taken): set the sending region's clock right "
                           "(NTP) and make the change again")
        try:
            adopted = await self._releases.adopt(traffic.to_json(), sender=sender)
        except StoreUnavailable:
            raise ApiError(503, "store_unavailable", "this region's store does not answer: the change cannot be "
                           "kept; it is pulled again from its region's state", retry_after=1) from None
        held = self._releases.traffic
        if not adopted and traffic.version < held.version:
            raise ApiError(409, "stale_release_version", f"this region holds a newer change ({list(held.version)})",
                           extra={"version": list(held.version)})
        if adopted:
            log.info("regions: releases' change %s from %s adopted", list(traffic.version), sender)
        return {"adopted": adopted, "version": list(held.version)}

    def _ahead(self, traffic: Traffic) -> float:
        """How far the change's version is ahead of this replica's clock, in seconds."""
        return traffic.version[0] / 1000 - self._clock()

    def state(self) -> dict[str, Any] | None:
        """This region's traffic for its state answer (None: nothing that travels)."""
        traffic = self._releases.traffic
        return traffic.to_json() if travels(traffic) else None

    async def polled(self, peer: Peer, answer: Mapping[str, Any]) -> None:
        """A peer's state answer: its traffic adopted when newer than the one this replica holds and
        acceptable here. It may be a third region's change the peer took (this region missed its
        push), so its version names any configured region; the audit line names the peer."""
        offered = Traffic.from_json(answer.get(STATE_FIELD))
        if (offered is None or not travels(offered) or not offered.newer_than(self._releases.traffic)
                or offered.version[1] not in self._regions.urls or self._ahead(offered) > AHEAD_SECONDS):
            return
        try:
            # A smoke verdict in it is taken only from its maker's own answer: a push may be anyone's.
            if await self._releases.adopt(offered.to_json(), sender=peer.name,
                                          from_its_maker=offered.version[1] == peer.name):
                log.info("regions: releases' change %s read from %s", list(offered.version), peer.name)
        except StoreUnavailable:
            pass  # the next poll tries again; the store's health says why
        except ApiError as refused:  # read twice a second: said once per change
            if offered.version != self._refused:
                self._refused = offered.version
                log.warning("regions: releases' change %s read from %s is not taken: %s", list(offered.version),
                            peer.name, refused.message)

    async def catch_up(self) -> None:
        """Before this replica serves: the newest traffic among its peers, then its own store's (bounded:
        a peer or a store that does not answer leaves the traffic to the reading loop)."""
        try:
            async with asyncio.timeout(CATCH_UP_SECONDS):
                if self._peers.by_name:
                    await self._peers.poll_all()
                await self._releases.refresh()
        except (TimeoutError, StoreUnavailable) as exc:
            log.warning("releases: the traffic could not be read before serving (%s); starts use the configured "
                        "weights until the store answers", type(exc).__name__)

    async def aclose(self) -> None:
        await self._pushes.aclose()
