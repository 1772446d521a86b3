"""Admission counts the provider's machines at most once per refresh window, off the request path
once it has a count, and never over-admits."""

from __future__ import annotations

import asyncio

import pytest

from dispatcher.admission import Admission
from dispatcher.errors import ApiError


class Provider:
    def __init__(self, active: int = 0) -> None:
        self.active = active
        self.list_calls = 0
        self.answer = asyncio.Event()  # the list call's answer; held while cleared
        self.answer.set()
        self.fail = False

    async def count(self) -> int:
        self.list_calls += 1
        await asyncio.sleep(0)  # a provider round trip
        await self.answer.wait()
        if self.fail:
            raise ApiError(503, "provider_unavailable", "list failed")
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


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def clocked(limit: int) -> tuple[Admission, Provider, Clock]:
    """Admission with a one-second window, stale after ten, on a clock the test moves."""
    provider, clock = Provider(), Clock()
    return Admission(limit, provider.count, refresh_seconds=1.0, stale_seconds=10.0, clock=clock), provider, clock


async def test_the_count_is_refreshed_in_the_background_after_the_window():
    admission, provider, clock = clocked(1)
    assert await admit(admission, provider)
    provider.active = 0  # the session ended elsewhere (another replica stopped it)
    assert not await admit(admission, provider)  # still counted until the window passes
    clock.now = 1.5
    assert await admit(admission, provider)  # the old count would refuse it: the recount decides
    assert provider.list_calls == 2


async def test_a_start_with_a_count_never_waits_for_the_recount():
    admission, provider, clock = clocked(5)
    assert await admit(admission, provider)
    clock.now = 1.5
    provider.answer.clear()  # the provider's list hangs
    assert await asyncio.wait_for(admit(admission, provider), timeout=5)  # answered while it hangs
    assert provider.list_calls == 2
    provider.answer.set()
    await admission.recounted()


async def test_a_stale_count_is_waited_for_and_a_failing_recount_refuses_the_start():
    admission, provider, clock = clocked(5)
    assert await admit(admission, provider)
    clock.now = 11.0
    provider.fail = True
    with pytest.raises(ApiError) as refused:
        async with admission.slot():
            pass
    assert refused.value.status == 503
    provider.fail = False
    assert await admit(admission, provider)
    assert provider.list_calls == 3


async def test_a_failing_background_recount_keeps_the_last_count():
    admission, provider, clock = clocked(2)
    assert await admit(admission, provider)
    clock.now = 1.5
    provider.fail = True
    assert await admit(admission, provider)  # 1 counted + this one
    await admission.recounted()
    assert not await admit(admission, provider)  # the failed recount did not forget either


async def test_invalidate_recounts_in_the_background():
    provider = Provider()
    admission = Admission(1, provider.count, refresh_seconds=60)
    assert await admit(admission, provider)
    provider.active = 0
    admission.invalidate()
    await admission.recounted()
    assert await admit(admission, provider)


async def test_a_failed_launch_frees_its_slot():
    provider = Provider()
    admission = Admission(1, provider.count, refresh_seconds=60)
    with pytest.raises(RuntimeError):
        async with admission.slot():
            raise RuntimeError("launch failed")
    assert await admit(admission, provider)
