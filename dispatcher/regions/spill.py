"""Where a start goes when this region cannot start it warm: the nearest region that can.

A start spills when this region is at its session cap, or when it has no warm bot for the
transport and its cold start is quoted past the caller's `maxWaitSeconds`. It goes to the nearest
peer (by measured round trip) that advertises room and a warm bot for the transport; failing
that, to the nearest with room whose cold start fits the caller's patience (any with room, when
the caller gave none). None fits: the start stays here, to be refused here as before.
docs/regions.md ("Spill-over").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.regions.peers import Peer

AT_CAPACITY = "at_capacity"
COLD_TOO_SLOW = "cold_start_over_max_wait"


@dataclass(frozen=True)
class Here:
    """What this region can do for a start now (from its own cheap, cached figures)."""

    room: int
    warm: bool  # a warm bot for the transport, within the caller's patience
    cold_start_seconds: float


def spill_reason(here: Here, max_wait_seconds: float | None) -> str | None:
    """Why this start cannot be served warm here, or None when it can (or may wait cold)."""
    if here.room <= 0:
        return AT_CAPACITY
    if not here.warm and max_wait_seconds is not None and here.cold_start_seconds > max_wait_seconds:
        return COLD_TOO_SLOW
    return None


def spill_target(nearest_first: Sequence[Peer], transport: str, max_wait_seconds: float | None) -> Peer | None:
    """The nearest peer that can start it warm; else the nearest with room fast enough cold."""
    with_room = [peer for peer in nearest_first if peer.capacity is not None and peer.capacity.room > 0]
    for peer in with_room:
        if peer.capacity is not None and peer.capacity.warm.get(transport):
            return peer
    for peer in with_room:
        if peer.capacity is not None and (max_wait_seconds is None
                                          or peer.capacity.cold_start_seconds <= max_wait_seconds):
            return peer
    return None
