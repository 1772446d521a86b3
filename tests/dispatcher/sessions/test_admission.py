"""Admission counts the provider's machines at most once per refresh window, off the request path
once it has a count, and never over-admits."""

from __future__ import annotations

import asyncio
import logging

import pytest

from dispatcher.errors import ApiError
from dispatcher.sessions.admission import Admission
from dispatcher.store.memory import LocalLaunches


class Provider:
    def __init__(self, active: int = 0) -> None:
        self.active = active
        self.list_calls = 0
        self.answer = asyncio.Event()  # the list call's answer; held while cleared
        self.answer.set()
        self.fail = False
        self.cancelled = 0  # list calls given up on (the dispatcher closing)

    async def count(self) -> int:
        self.list_calls += 1
        await asyncio.sleep(0)  # a provider round trip
        try:
            await self.answer.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
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
    admission = Admission(100, provider.count, launches=LocalLaunches(), refresh_seconds=60)
    results = await asyncio.gather(*(admit(admission, provider) for _ in range(50)))
    assert all(results)
    assert provider.list_calls == 1


async def test_a_burst_never_exceeds_the_limit_between_refreshes():
    provider = Provider(active=2)
    admission = Admission(5, provider.count, launches=LocalLaunches(), refresh_seconds=60)
    results = await asyncio.gather(*(admit(admission, provider) for _ in range(20)))
    assert sum(results) == 3


class Clock:
    def __init__(self) -> None:
        # A monotonic clock's origin is arbitrary: not 0, so an age computed as a sum would show.
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def clocked(limit: int) -> tuple[Admission, Provider, Clock]:
    """Admission with a one-second window, stale after ten, on a clock the test moves."""
    provider, clock = Provider(), Clock()
    admission = Admission(limit, provider.count, launches=LocalLaunches(), refresh_seconds=1.0, stale_seconds=10.0,
                          clock=clock)
    return admission, provider, clock


async def test_the_count_is_refreshed_in_the_background_after_the_window():
    admission, provider, clock = clocked(1)
    assert await admit(admission, provider)
    provider.active = 0  # the session ended elsewhere (another replica stopped it)
    assert not await admit(admission, provider)  # still counted until the window passes
    clock.now += 1.5
    assert await admit(admission, provider)  # the old count would refuse it: the recount decides
    assert provider.list_calls == 2


async def test_a_start_with_a_count_never_waits_for_the_recount():
    admission, provider, clock = clocked(5)
    assert await admit(admission, provider)
    clock.now += 1.5
    provider.answer.clear()  # the provider's list hangs
    assert await asyncio.wait_for(admit(admission, provider), timeout=5)  # answered while it hangs
    assert provider.list_calls == 2
    provider.answer.set()
    await admission.recounted()


async def test_a_stale_count_is_waited_for_and_a_failing_recount_refuses_the_start():
    admission, provider, clock = clocked(5)
    assert await admit(admission, provider)
    clock.now += 11.0
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
    clock.now += 1.5
    provider.fail = True
    assert await admit(admission, provider)  # 1 counted + this one
    await admission.recounted()
    assert not await admit(admission, provider)  # the failed recount did not forget either


async def test_invalidate_recounts_in_the_background():
    provider = Provider()
    admission = Admission(1, provider.count, launches=LocalLaunches(), refresh_seconds=60)
    assert await admit(admission, provider)
    provider.active = 0
    admission.invalidate()
    await admission.recounted()
    assert await admit(admission, provider)


async def test_a_failed_launch_frees_its_slot():
    provider = Provider()
    admission = Admission(1, provider.count, launches=LocalLaunches(), refresh_seconds=60)
    with pytest.raises(RuntimeError):
        async with admission.slot():
            raise RuntimeError("launch failed")
    assert await admit(admission, provider)


async def test_recounted_returns_once_the_recount_in_progress_has_landed():
    provider = Provider()
    admission = Admission(1, provider.count, launches=LocalLaunches(), refresh_seconds=60)
    assert await admit(admission, provider)
    provider.active, provider.answer = 0, asyncio.Event()  # the next list call is held
    admission.invalidate()
    waiting = asyncio.create_task(admission.recounted())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()  # the list is still held
    provider.answer.set()
    await asyncio.wait_for(waiting, timeout=5)
    assert await admit(admission, provider)  # the recount's 0 is in force


async def test_recounted_with_no_recount_returns_at_once():
    await asyncio.wait_for(Admission(1, Provider().count, launches=LocalLaunches()).recounted(), timeout=5)


async def test_a_failing_background_recount_is_logged_with_its_reason(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.WARNING, logger="dispatcher.sessions.admission")
    admission, provider, clock = clocked(5)
    assert await admit(admission, provider)
    clock.now += 1.5
    provider.fail = True
    assert await admit(admission, provider)
    await admission.recounted()
    await asyncio.sleep(0)  # the done callback runs on the next turn of the loop
    [record] = [r for r in caplog.records if r.name == "dispatcher.sessions.admission"]
    assert "counting active sessions failed" in record.getMessage() and "list failed" in record.getMessage()


async def test_closing_gives_up_a_hanging_recount_and_returns_once_it_has_stopped():
    provider = Provider()
    admission = Admission(1, provider.count, launches=LocalLaunches(), refresh_seconds=60)
    assert await admit(admission, provider)
    provider.answer.clear()  # the provider's list hangs
    admission.invalidate()
    await asyncio.sleep(0)

    async def close_then_look() -> int:
        await admission.aclose()
        return provider.cancelled  # read before the loop turns again: aclose itself waited

    assert await asyncio.wait_for(close_then_look(), timeout=5) == 1  # stopped, not left running


async def test_a_count_ten_windows_old_is_stale_by_default_and_waited_for():
    provider, clock = Provider(), Clock()
    # Stale after max(10 s, 10 windows).
    admission = Admission(5, provider.count, launches=LocalLaunches(), refresh_seconds=1.0, clock=clock)
    assert await admit(admission, provider)
    clock.now += 10.0
    provider.answer.clear()  # the provider's list hangs
    admitted = asyncio.Event()

    async def start() -> None:
        async with admission.slot():
            admitted.set()

    starting = asyncio.create_task(start())
    for _ in range(5):
        await asyncio.sleep(0)
    assert not admitted.is_set()  # no start on a count that old: it waits for the recount
    provider.answer.set()
    await asyncio.wait_for(starting, timeout=5)
    assert admitted.is_set()


async def test_a_count_one_window_old_is_recounted_in_the_background():
    admission, provider, clock = clocked(5)
    assert await admit(admission, provider)
    clock.now += 1.0
    assert await admit(admission, provider)
    await admission.recounted()
    assert provider.list_calls == 2


async def test_a_full_dispatcher_answers_429_at_capacity_with_a_retry_after():
    provider = Provider(active=1)
    admission = Admission(1, provider.count, launches=LocalLaunches(), refresh_seconds=60)
    with pytest.raises(ApiError) as refused:
        async with admission.slot():
            pass
    assert (refused.value.status, refused.value.code) == (429, "at_capacity")
    assert refused.value.retry_after == 5.0
