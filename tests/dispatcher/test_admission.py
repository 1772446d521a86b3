"""Admission counts the provider's machines at most once per refresh window, and never over-admits."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.admission import Admission
from dispatcher.errors import ApiError


class Provider:
    def __init__(self, active: int = 0) -> None:
        self.active = active
        self.list_calls = 0

    async def count(self) -> int:
        self.list_calls += 1
        await asyncio.sleep(0.01)  # a provider round trip
        return self.active


async def admit(admission: Admission, provider: Provider) -> bool:
    try:
        async with admission.slot():
            await asyncio.sleep(0.01)  # the launch
            provider.active += 1
    except ApiError:
        return False
    return True


async def test_a_burst_lists_the_provider_once_per_refresh_window():
    provider = Provider()
    admission = Admission(100, provider.count, refresh_seconds=60)
    results = await asyncio.gather(*(admit(admission, provider) for _ in range(50)))
    assert all(results)
    assert provider.list_calls == 1


async def test_a_burst_never_exceeds_the_limit_between_refreshes():
    provider = Provider(active=2)
    admission = Admission(5, provider.count, refresh_seconds=60)
    results = await asyncio.gather(*(admit(admission, provider) for _ in range(20)))
    assert sum(results) == 3


async def test_the_count_is_refreshed_after_the_window():
    now = [0.0]
    provider = Provider()
    admission = Admission(1, provider.count, refresh_seconds=1.0, clock=lambda: now[0])
    assert await admit(admission, provider)
    provider.active = 0  # the session ended elsewhere (another replica stopped it)
    assert not await admit(admission, provider)  # still counted until the window passes
    now[0] = 1.5
    assert await admit(admission, provider)
    assert provider.list_calls == 2


async def test_invalidate_recounts_at_the_next_start():
    provider = Provider()
    admission = Admission(1, provider.count, refresh_seconds=60)
    assert await admit(admission, provider)
    provider.active = 0
    admission.invalidate()
    assert await admit(admission, provider)


async def test_a_failed_launch_frees_its_slot():
    provider = Provider()
    admission = Admission(1, provider.count, refresh_seconds=60)
    with pytest.raises(RuntimeError):
        async with admission.slot():
            raise RuntimeError("launch failed")
    assert await admit(admission, provider)
