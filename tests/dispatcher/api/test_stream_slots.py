"""The bounds on open session waits (event streams, long-polls), per key and per replica."""

from __future__ import annotations

import pytest

from dispatcher.api.stream_slots import StreamSlots
from dispatcher.errors import ApiError


def test_the_replica_bound_admits_exactly_its_number_of_waits_across_keys() -> None:
    slots = StreamSlots(total=3, per_key=5)
    releases = [slots.take(key) for key in ("key-a", "key-b", "key-c")]  # three keys, one wait each
    assert slots.held == 3
    with pytest.raises(ApiError) as refused:
        slots.take("key-d")  # a fourth key, well within its own bound: the replica's is reached
    assert refused.value.status == 429 and refused.value.code == "too_many_waits"
    assert refused.value.retry_after is not None and refused.value.retry_after > 0
    releases[0]()
    slots.take("key-d")  # one given back: one more admitted
    assert slots.held == 3


def test_a_keys_bound_admits_exactly_its_number_of_waits_and_leaves_other_keys_theirs() -> None:
    slots = StreamSlots(total=10, per_key=2)
    first = slots.take("key-a")
    slots.take("key-a")
    with pytest.raises(ApiError):
        slots.take("key-a")
    slots.take("key-b")  # another key is not held back by key-a's waits
    first()
    first()  # released twice (a stream's end and its cancellation): gives back one slot only
    assert slots.held == 2
    slots.take("key-a")
    with pytest.raises(ApiError):
        slots.take("key-a")
