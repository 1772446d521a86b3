"""Refill pacing under the provider's create limit, and which idle bots are retired."""

from __future__ import annotations

import pytest

from dispatcher.reserve.pacing import IdleBot, LaunchTokens, ReservePlan, claim_order, plan_reserve
from dispatcher.reserve.policy import ReserveSettings, ReserveSize

IMAGE = "sha256:new"
SETTINGS = ReserveSettings(min_idle=1, max_idle=50, max_idle_seconds=900.0, scaledown_seconds=60.0)


def bots(*ages: float, now: float = 1000.0, image: str = IMAGE) -> list[IdleBot]:
    return [IdleBot(f"bot-{i}", now - age, image) for i, age in enumerate(ages)]


def plan(
    idle: list[IdleBot],
    *,
    warming: int = 0,
    ready: int = 1,
    total: int = 1,
    spare: int = 10,
    cold: float = 40.0,
    now: float = 1000.0,
) -> ReservePlan:
    return plan_reserve(
        idle,
        warming=warming,
        size=ReserveSize(ready=ready, total=total),
        now=now,
        image=IMAGE,
        settings=SETTINGS,
        cold_start_seconds=cold,
        spare_launches=spare,
    )


# --- the launch budget ------------------------------------------------------------------


def test_a_fresh_bucket_holds_its_burst() -> None:
    assert LaunchTokens(per_second=1.0, burst=3).available(0.0) == 3.0


def test_a_refill_leaves_one_token_for_a_cold_start() -> None:
    assert LaunchTokens(per_second=1.0, burst=3).spare(0.0) == 2


def test_a_bucket_of_one_lends_its_only_token_to_refills() -> None:
    # With a burst of 1 there is no headroom to keep: refills would otherwise never run.
    assert LaunchTokens(per_second=1.0, burst=1).spare(0.0) == 1


def test_spent_tokens_come_back_at_the_rate() -> None:
    tokens = LaunchTokens(per_second=2.0, burst=4)
    tokens.spend(0.0, 4)
    assert tokens.available(1.0) == pytest.approx(2.0)


def test_tokens_never_refill_past_the_burst() -> None:
    tokens = LaunchTokens(per_second=20.0, burst=20)
    tokens.spend(0.0, 5)
    assert tokens.available(100.0) == 20.0


def test_cold_launches_may_overdraw_and_then_wait_their_turn() -> None:
    tokens = LaunchTokens(per_second=1.0, burst=3)
    tokens.spend(0.0, 4)
    assert tokens.available(0.0) == -1.0
    assert tokens.seconds_until_token(0.0) == pytest.approx(2.0)
    assert tokens.spare(0.0) == 0


def test_no_wait_when_a_token_is_there() -> None:
    assert LaunchTokens(per_second=1.0, burst=3).seconds_until_token(0.0) == 0.0


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 3), (1.0, 0)])
def test_a_launch_limit_needs_a_rate_and_a_burst(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        LaunchTokens(per_second=rate, burst=burst)


# --- launches ---------------------------------------------------------------------------


def test_the_shortfall_is_launched() -> None:
    assert plan(bots(5.0), warming=2, ready=2, total=6) == ReservePlan(launch=3, retire=())


def test_launches_stop_at_the_spare_tokens() -> None:
    assert plan([], ready=2, total=6, spare=2).launch == 2


def test_nothing_is_launched_when_the_target_is_met() -> None:
    assert plan(bots(5.0, 6.0), warming=1, ready=1, total=3) == ReservePlan(launch=0, retire=())


def test_a_bot_near_its_maximum_age_is_replaced_before_it_retires() -> None:
    # 880 s idle, 900 s maximum, 40 s cold start: its replacement must start now to be in time.
    assert plan(bots(880.0)) == ReservePlan(launch=1, retire=())


def test_a_bot_further_from_its_maximum_age_than_a_cold_start_is_not_replaced() -> None:
    assert plan(bots(850.0)).launch == 0


# --- retirements ------------------------------------------------------------------------


def test_a_bot_at_its_maximum_idle_age_is_retired_and_replaced() -> None:
    assert plan(bots(900.0)) == ReservePlan(launch=1, retire=("bot-0",))


def test_idle_bots_of_an_old_image_are_retired_and_replaced() -> None:
    old = bots(5.0, image="sha256:old")
    assert plan(old) == ReservePlan(launch=1, retire=("bot-0",))


def test_surplus_retires_the_oldest_idle_bots_first() -> None:
    idle = bots(100.0, 300.0, 200.0)
    assert plan(idle, ready=1, total=1) == ReservePlan(launch=0, retire=("bot-1", "bot-2"))


def test_surplus_spares_bots_idle_for_less_than_the_scaledown_time() -> None:
    idle = bots(100.0, 30.0, 20.0)
    assert plan(idle, ready=1, total=1).retire == ("bot-0",)


def test_surplus_from_warming_bots_never_retires_below_the_ready_stock() -> None:
    # A burst ended with 8 replacements still warming: keep the 2 ready ones until they land.
    assert plan(bots(100.0, 200.0, 300.0), warming=8, ready=2, total=5).retire == ("bot-2",)


def test_a_bot_near_its_age_is_retired_as_surplus_once_replacements_cover_the_target() -> None:
    assert plan(bots(880.0, 100.0), warming=1, ready=1, total=2).retire == ("bot-0",)


# --- claims -----------------------------------------------------------------------------


def test_claims_take_the_oldest_bot_of_the_current_image() -> None:
    idle = [IdleBot("a", 50.0, IMAGE), IdleBot("b", 10.0, "sha256:old"), IdleBot("c", 20.0, IMAGE)]
    assert [b.bot_id for b in claim_order(idle, IMAGE)] == ["c", "a"]
