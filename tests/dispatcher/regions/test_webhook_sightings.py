"""A webhook signature's home: the same region wherever it is computed, another only for the
signatures whose home left, and a home's request body read strictly (400 otherwise)."""

from __future__ import annotations

import hashlib

import pytest

from dispatcher.errors import ApiError
from dispatcher.regions.sightings import MAX_SECONDS, parse_sighting, sighting_home


def test_a_home_is_one_region_in_any_order_and_moves_only_when_it_leaves() -> None:
    digests = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(200)]
    homes = {d: sighting_home(["eu", "us", "ap"], d) for d in digests}
    assert all(sighting_home(["ap", "eu", "us"], d) == homes[d] for d in digests)
    assert set(homes.values()) == {"eu", "us", "ap"}  # spread over every region
    assert all(sighting_home(["eu", "us"], d) == homes[d] for d in digests if homes[d] != "ap")


@pytest.mark.parametrize("body", [
    None, [], {"key": "ab", "seconds": 10}, {"key": "0" * 64}, {"key": "0" * 64, "seconds": 0},
    {"key": "0" * 64, "seconds": MAX_SECONDS + 1}, {"key": "0" * 64, "seconds": "10"},
    {"key": "0" * 64, "seconds": float("nan")}, {"key": "A" * 64, "seconds": 10},
])
def test_a_sighting_request_that_is_not_a_digest_and_a_time_is_a_400(body: object) -> None:
    with pytest.raises(ApiError) as refused:
        parse_sighting(body)
    assert refused.value.status == 400


def test_a_sighting_request_is_read() -> None:
    assert parse_sighting({"key": "f" * 64, "seconds": 90000}) == ("f" * 64, 90000.0)
