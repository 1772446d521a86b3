"""Where a start spills: the nearest region that can start it warm, else the nearest with room fast
enough cold; never when this region can serve it."""

from __future__ import annotations

import math

from dispatcher.regions.peers import Capacity, Peer
from dispatcher.regions.spill import AT_CAPACITY, COLD_TOO_SLOW, Here, spill_reason, spill_target


def peer(name: str, rtt: float, *, room: int = 5, warm: bool = False, cold: float = 3.0) -> Peer:
    return Peer(name, f"https://{name}.example", True, rtt, Capacity({"webrtc": warm}, int(warm), room, cold))


def test_a_start_spills_only_at_the_cap_or_when_its_cold_start_outlasts_the_callers_patience() -> None:
    assert spill_reason(Here(room=0, warm=True, cold_start_seconds=1), None) == AT_CAPACITY
    assert spill_reason(Here(room=3, warm=False, cold_start_seconds=30), 5) == COLD_TOO_SLOW
    assert spill_reason(Here(room=3, warm=True, cold_start_seconds=30), 5) is None
    assert spill_reason(Here(room=3, warm=False, cold_start_seconds=30), None) is None  # no patience given
    assert spill_reason(Here(room=3, warm=False, cold_start_seconds=4), 5) is None


def test_the_nearest_warm_region_wins_over_a_nearer_cold_one() -> None:
    nearest_first = [peer("eu", 0.010), peer("us", 0.075, warm=True), peer("ap", 0.140, warm=True)]
    assert spill_target(nearest_first, "webrtc", 5).name == "us"


def test_without_a_warm_region_the_nearest_with_room_fast_enough_cold_is_taken() -> None:
    nearest_first = [peer("eu", 0.010, room=0, warm=True), peer("us", 0.075, cold=30), peer("ap", 0.14, cold=4)]
    assert spill_target(nearest_first, "webrtc", 5).name == "ap"
    assert spill_target(nearest_first, "webrtc", None).name == "us"  # at the cap, with no patience given
    assert spill_target(nearest_first, "webrtc", 2) is None
    assert spill_target([peer("eu", 0.01, cold=math.inf)], "webrtc", 5) is None


def test_the_boundaries_one_seat_left_and_a_cold_start_exactly_as_long_as_the_patience() -> None:
    assert spill_reason(Here(room=1, warm=False, cold_start_seconds=5), None) is None
    assert spill_reason(Here(room=1, warm=False, cold_start_seconds=5), 5) is None
    exact = [peer("us", 0.07, room=1, cold=5.0)]
    assert spill_target(exact, "webrtc", 5).name == "us"
    assert spill_target([peer("us", 0.07, room=0, warm=True)], "webrtc", None) is None
