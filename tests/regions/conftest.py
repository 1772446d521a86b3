"""The regions tests' shared setup: two regional dispatchers with the stack's defaults, once per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.regions.test_region_peers import RegionPair, reachable, regions, until


@pytest.fixture(scope="module")
def region_pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegionPair]:
    """eu and us, each reading the other: for a module's tests that leave both running as they found
    them (their own keys and sessions); a test that kills or changes a region starts its own pair.
    Two dispatchers and their first polls cost more CPU than most of these tests' requests."""
    with regions(tmp_path_factory.mktemp("region-pair"), ("eu", "us")) as (urls, running):
        until(lambda: reachable(running["eu"], "us") and reachable(running["us"], "eu"), 60)
        yield urls, running
