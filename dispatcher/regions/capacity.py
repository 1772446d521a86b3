"""The other regions as the reserve's planner sizes by them: each peer's last `/regions/state`.

Read from what `Peers` already polls every 0.5 s, never from a shared store: a region's reserve
leans only on what its neighbours say themselves (dispatcher/reserve/neighbours.py has the rule).
A peer never read, or one that stopped answering, is unreachable: it lends nothing.
"""

from __future__ import annotations

import math

from dispatcher.regions.peers import Peers
from dispatcher.reserve.neighbours import Neighbour


def neighbours_of(peers: Peers) -> list[Neighbour]:
    return [Neighbour(name=peer.name, reachable=peer.reachable and peer.capacity is not None,
                      round_trip_seconds=peer.round_trip,
                      idle=peer.capacity.idle if peer.capacity is not None else 0,
                      rate=peer.capacity.demand_per_minute / 60 if peer.capacity is not None else 0.0,
                      refill_seconds=peer.capacity.refill_seconds if peer.capacity is not None else math.inf,
                      warming=peer.capacity.warming if peer.capacity is not None else 0)
            for peer in peers.by_name.values()]
