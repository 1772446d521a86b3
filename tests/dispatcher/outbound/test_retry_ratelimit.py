"""The shared retry helper and the client-side token bucket."""

from __future__ import annotations

import random

import pytest

from dispatcher.outbound.ratelimit import Rate, RateLimited, TokenBucket
from dispatcher.outbound.retry import Backoff, Transient, parse_retry_after, with_retries
from dispatcher.settings import SettingsError


class Flaky:
    def __init__(self, failures: int, retry_after: float | None = None) -> None:
        self.failures = failures
        self.retry_after = retry_after
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise Transient("flaky", retry_after=self.retry_after)
        return "ok"


async def test_transient_failures_are_retried_until_success() -> None:
    call = Flaky(failures=2)
    assert await with_retries(call, Backoff(attempts=3, base=0.001)) == "ok"
    assert call.calls == 3


async def test_retries_stop_after_the_attempts_bound() -> None:
    call = Flaky(failures=10)
    with pytest.raises(Transient):
        await with_retries(call, Backoff(attempts=3, base=0.001))
    assert call.calls == 3


class Clock:
    """Time that passes only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_retries_stop_before_sleeping_past_the_deadline() -> None:
    clock = Clock()
    call = Flaky(failures=10, retry_after=1.0)
    with pytest.raises(Transient):
        await with_retries(call, Backoff(attempts=10, deadline=0.5), sleep=clock.sleep, clock=clock)
    assert call.calls == 1
    assert clock.sleeps == []  # a 1 s wait would end past the 0.5 s deadline: give up instead


async def test_a_retry_whose_turn_came_past_the_deadline_is_not_sent() -> None:
    """`before_retry` waits for the retry's turn (a create's token): a turn that comes after the deadline sends
    nothing more, and the last failure is given up with."""
    clock = Clock()
    call = Flaky(failures=10, retry_after=0.1)
    turns: list[float] = []

    async def slow_turn() -> bool:
        turns.append(clock.now)
        await clock.sleep(1.0)
        return True

    with pytest.raises(Transient):
        await with_retries(call, Backoff(attempts=10, base=0.001, deadline=0.5), sleep=clock.sleep, clock=clock,
                           before_retry=slow_turn)
    assert call.calls == 1 and turns == [0.1]


async def test_retries_sleep_while_the_deadline_allows_then_give_up() -> None:
    clock = Clock()
    call = Flaky(failures=10, retry_after=0.2)
    with pytest.raises(Transient):
        await with_retries(call, Backoff(attempts=10, base=0.001, deadline=0.5), sleep=clock.sleep, clock=clock)
    assert clock.sleeps == [0.2, 0.2]  # a third 0.2 s wait would end at 0.6 s
    assert call.calls == 3



class Answers:
    """Each try fails with the next of `statuses` (None: no answer at all)."""

    def __init__(self, *statuses: int | None) -> None:
        self.statuses = list(statuses)

    async def __call__(self) -> str:
        status = self.statuses.pop(0)
        raise Transient("no answer" if status is None else f"HTTP {status}", status=status)


@pytest.mark.parametrize(("statuses", "throttled", "account"), [
    ((429, 429, 429), True, "HTTP 429"),
    ((None, 429, 429), False, "no answer; then HTTP 429"),
    ((429, 503, 429), False, "HTTP 503; then HTTP 429"),
    ((None, 503, 429), False, "no answer; then HTTP 429"),  # the first that may have been served
    ((429, 429, None), False, "no answer"),
])
async def test_a_give_up_is_throttled_only_when_every_try_was(
        statuses: tuple[int | None, ...], throttled: bool, account: str) -> None:
    """A try that got no answer, or a 5xx, may have been served: a later 429 does not undo it."""
    with pytest.raises(Transient) as gave_up:
        await with_retries(Answers(*statuses), Backoff(attempts=len(statuses), base=0.001))
    assert gave_up.value.throttled is throttled and gave_up.value.account() == account


UNSENT = "unsent"  # a try that never connected


@pytest.mark.parametrize(("tries", "nothing_sent", "throttled"), [
    ((UNSENT, UNSENT), True, False),
    ((429, UNSENT), True, False),  # throttled, then never sent: nothing done either way
    ((UNSENT, 429), False, True),
    ((None, UNSENT), False, False),  # the first got no answer: it may have been served
    ((503, UNSENT), False, False),
])
async def test_a_give_up_sent_nothing_only_when_no_try_may_have_been_served(
        tries: tuple[int | str | None, ...], nothing_sent: bool, throttled: bool) -> None:
    """A try that never connected did nothing, as a 429 did: a give-up of such tries is `nothing_sent`."""
    left = list(tries)

    async def once() -> str:
        tried = left.pop(0)
        if isinstance(tried, str):
            raise Transient("connection refused", unsent=True)
        raise Transient("no answer" if tried is None else f"HTTP {tried}", status=tried)

    with pytest.raises(Transient) as gave_up:
        await with_retries(once, Backoff(attempts=len(tries), base=0.001))
    assert (gave_up.value.nothing_sent, gave_up.value.throttled) == (nothing_sent, throttled)

async def test_retry_after_is_a_floor_on_the_delay() -> None:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    await with_retries(Flaky(failures=1, retry_after=0.75), Backoff(base=0.001), sleep=sleep)
    assert sleeps == [0.75]


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("9" * 400) is None and parse_retry_after("inf") is None  # no time: not an overflow
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == pytest.approx(6.0)
    assert parse_retry_after("soon") is None


async def test_bucket_lets_a_burst_through_then_paces_calls() -> None:
    clock = Clock()
    bucket = TokenBucket("t", Rate(per_second=20, burst=3), clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await bucket.acquire()
    assert clock.sleeps == pytest.approx([0.05, 0.05])  # 3 free, then one token per 50 ms


async def test_callers_arriving_together_each_wait_for_their_own_token() -> None:
    clock = Clock()
    # The bucket's clock stands still: all three ask before any token refills.
    bucket = TokenBucket("q", Rate(per_second=20, burst=1), clock=lambda: 0.0, sleep=clock.sleep)
    for _ in range(3):
        await bucket.acquire()
    assert clock.sleeps == pytest.approx([0.05, 0.10])


async def test_bucket_refuses_a_caller_that_would_wait_too_long() -> None:
    bucket = TokenBucket("fly-create", Rate(per_second=1, burst=1, max_wait=0.5))
    await bucket.acquire()
    with pytest.raises(RateLimited) as caught:
        await bucket.acquire()
    assert caught.value.retry_after == pytest.approx(1.0, abs=0.1)


def test_rates_come_from_the_environment_with_documented_defaults() -> None:
    assert Rate.from_env({}, "FLY_CREATE") == Rate(per_second=1, burst=3, max_wait=3.0)  # the catalogue's
    assert Rate.from_env({"FLY_CREATE_RATE": "0.5", "FLY_CREATE_BURST": "2"}, "FLY_CREATE") == Rate(
        per_second=0.5, burst=2, max_wait=3.0
    )
    with pytest.raises(SettingsError, match="FLY_CREATE_BURST"):
        Rate.from_env({"FLY_CREATE_BURST": "0"}, "FLY_CREATE")


async def test_a_caller_may_wait_exactly_the_longest_wait_and_no_longer() -> None:
    clock = Clock()
    bucket = TokenBucket("edge", Rate(per_second=2, burst=1, max_wait=0.5), clock=lambda: 0.0, sleep=clock.sleep)
    await bucket.acquire()
    await bucket.acquire()  # its token arrives in exactly 0.5 s: allowed
    with pytest.raises(RateLimited) as caught:
        await bucket.acquire()  # 1 s: refused at once, saying when to come back
    assert clock.sleeps == [0.5]
    assert caught.value.retry_after == 1.0 and "edge" in str(caught.value) and "1.0s" in str(caught.value)


@pytest.mark.parametrize("rate", [Rate(per_second=0, burst=1), Rate(per_second=1, burst=0)])
def test_a_bucket_that_could_never_give_a_token_is_refused_when_built(rate: Rate) -> None:
    with pytest.raises(ValueError, match="positive rate"):
        TokenBucket("never", rate)


def test_a_burst_of_one_is_the_smallest_setting() -> None:
    assert Rate.from_env({"DAILY_BURST": "1"}, "DAILY").burst == 1  # one call at a time


async def test_a_retry_may_sleep_until_exactly_the_deadline() -> None:
    clock = Clock()
    call = Flaky(failures=10, retry_after=0.25)
    with pytest.raises(Transient):
        await with_retries(call, Backoff(attempts=10, base=0.001, deadline=0.5), sleep=clock.sleep, clock=clock)
    assert clock.sleeps == [0.25, 0.25]  # the second wait ends at 0.5 s, on the deadline: allowed
    assert call.calls == 3


async def test_backoff_doubles_from_its_base_up_to_its_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # full jitter at its top: the bound itself
    clock = Clock()
    backoff = Backoff(attempts=6, base=1.0, cap=6.0, deadline=1000)
    with pytest.raises(Transient):
        await with_retries(Flaky(failures=10), backoff, sleep=clock.sleep, clock=clock)
    assert clock.sleeps == [1.0, 2.0, 4.0, 6.0, 6.0]
