"""The frontier keeps the settings nothing beats on idle cost and p95, then warm share."""

from __future__ import annotations

import math
from dataclasses import replace

from bench.reserve_frontier import Point, frontier
from bench.reserve_sim_report import Row

BASE = Row("ecs-fargate", 0.5, 1000, 0.9, 0.0, 0, 0.3, 40.0, 0.3, 2.0, 0.0, 5, 0, 30, 70.0, 0.0, 500.0, math.nan)


def point(label: str, cost: float, p95: float, warm: float) -> Point:
    return Point(label, replace(BASE, hot_month=cost, p95=p95, warm=warm))


def test_a_dearer_slower_setting_is_off_the_frontier() -> None:
    cheap_fast = point("a", 50.0, 0.3, 0.96)
    dear_slow = point("b", 80.0, 40.0, 0.92)
    assert frontier([dear_slow, cheap_fast]) == [cheap_fast]


def test_a_trade_between_cost_and_p95_keeps_both_cheapest_first() -> None:
    cheap_slow = point("a", 40.0, 45.0, 0.89)
    dear_fast = point("b", 90.0, 0.3, 0.96)
    assert frontier([dear_fast, cheap_slow]) == [cheap_slow, dear_fast]


def test_of_settings_that_did_exactly_as_well_the_first_is_kept() -> None:
    first, same = point("min 0", 60.0, 0.3, 0.95), point("min 1", 60.0, 0.3, 0.95)
    assert frontier([first, same]) == [first]


def test_a_never_ready_p95_loses_to_any_finite_one_at_the_same_cost() -> None:
    assert frontier([point("a", 60.0, math.inf, 0.5), point("b", 60.0, 30.0, 0.5)])[0].label == "b"
