"""What a region advertises of its reserve reaches its peers' planners: its provider's creates a
second too (a neighbour holds bots only for starts beyond them), and a region that does not say
(an older one) counts as keeping up."""

from __future__ import annotations

import math

import pytest

from dispatcher.regions.capacity import neighbours_of
from dispatcher.regions.config import Regions
from dispatcher.regions.peers import Capacity, Peers


def peers_with(capacity: Capacity) -> Peers:
    regions = Regions.from_env({"REGION": "eu", "REGIONS": "eu=https://eu.example,us=https://us.example",
                                "REGION_SECRET": "s" * 32})
    peers = Peers(regions)
    peer = peers.by_name["us"]
    peer.reachable, peer.round_trip, peer.capacity = True, 0.075, capacity
    return peers


def test_a_regions_creates_a_second_cross_to_its_neighbours_planner() -> None:
    sent = Capacity(idle=3, demand_per_minute=1620.0, refill_seconds=41.0, warming=800, create_per_second=20.0)
    read = Capacity.from_json(sent.to_json())
    assert read.create_per_second == 20.0
    (us,) = neighbours_of(peers_with(read))
    assert (us.name, us.create_per_second, us.rate, us.warming) == ("us", 20.0, 27.0, 800)


def test_a_region_that_does_not_say_counts_as_keeping_up_and_a_bad_figure_is_refused() -> None:
    older = {k: v for k, v in Capacity(idle=3).to_json().items() if k != "create_per_second"}
    assert Capacity.from_json(older).create_per_second == math.inf
    assert Capacity().to_json()["create_per_second"] is None
    for bad in (-1, "nan"):
        with pytest.raises(ValueError):
            Capacity.from_json({**older, "create_per_second": bad})
