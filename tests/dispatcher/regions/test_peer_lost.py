"""A region that stops answering is unreachable after the first poll it does not answer, so within
POLL_SECONDS + ANSWER_SECONDS of its loss (tests/regions times it with real processes, on a machine
too busy to assert a duration on)."""

from __future__ import annotations

import socket
from types import MappingProxyType

from dispatcher.regions.config import Regions
from dispatcher.regions.peers import ANSWER_SECONDS, POLL_SECONDS, Peers


async def test_one_unanswered_poll_makes_a_reachable_region_unreachable() -> None:
    with socket.socket() as held:  # bound, never listening: its port refuses every connection
        held.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{held.getsockname()[1]}"
        peers = Peers(Regions("eu", MappingProxyType({"eu": "http://127.0.0.1:1", "us": gone}), b"k" * 32))
        us = peers.by_name["us"]
        us.reachable, us.round_trip, us.answered_at = True, 0.01, 0.0  # it answered the poll before
        assert await peers.poll(us) == []
    assert not us.reachable and us.problem is not None and "no answer" in us.problem, us
    assert peers.nearest_first() == []  # nothing is relayed to it from now on
    assert POLL_SECONDS + ANSWER_SECONDS < 2.0  # the bound the regions' docs give for noticing a loss
