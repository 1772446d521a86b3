"""The regions tests' shared setup: two regional dispatchers with the stack's defaults, once per module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.regions.support import RegionPair, reachable, regions, until


@pytest.fixture(scope="module")
def region_stack() -> Iterator[ExitStack]:
    """What the module's region pair holds: a test that restarts a region enters its new process here,
    so the pair stays whole for the module's later tests and is stopped with it."""
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="module")
def region_pair(tmp_path_factory: pytest.TempPathFactory, region_stack: ExitStack) -> RegionPair:
    """eu and us, each reading the other: for a module's tests that leave both running as they found
    them (their own keys and sessions); a test that changes a region starts its own pair, and one that
    kills a region starts it again on its port (`region_stack`). Two dispatchers and their first polls
    cost more CPU than most of these tests' requests."""
    urls, running = region_stack.enter_context(regions(tmp_path_factory.mktemp("region-pair"), ("eu", "us")))
    until(lambda: reachable(running["eu"], "us") and reachable(running["us"], "eu"), 60)
    return urls, running
