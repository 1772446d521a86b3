"""Each runtime capacity value over its setting (dispatcher/api/runtime_capacity.py): what a change
is checked for, and the reserve's settings a runtime min, max and target make."""

from __future__ import annotations

import pytest

from dispatcher.api.runtime_capacity import Floors, checked, listing, reserve_settings
from dispatcher.errors import ApiError
from dispatcher.reserve.policy import ReserveSettings

RESERVE = ReserveSettings(min_idle=1, max_idle=4)
FLOORS = Floors(sessions=50, key_share=0.5, reserve=RESERVE, provider="fly")


def test_null_returns_a_value_to_its_setting_and_the_listing_says_which_applies() -> None:
    values = checked({"sessions": 200, "reserve.target": 3}, {}, FLOORS, {"acme"})
    values = checked({"sessions": None, "key.acme": 0.25}, values, FLOORS, {"acme"})
    assert values == {"reserve.target": 3, "key.acme": 0.25}
    shown = listing(values, FLOORS, {"acme"}, {"sessions": 7})
    assert shown["sessions"] == {"value": 50, "setting": 50, "runtime": None, "in_use": 7}
    assert shown["key.acme"]["value"] == 0.25 and shown["provider.fly"]["value"] is None


@pytest.mark.parametrize(("change", "code"), [
    ({"reserve.min": 9}, "invalid_capacity_change"),  # above the setting's max
    ({"reserve.max": 0}, "invalid_capacity_value"),  # off takes a restart
    ({"reserve.target": 0}, "invalid_capacity_value"),
    ({"key.acme": 1.5}, "invalid_capacity_value"),
    ({"key.acme": 0}, "invalid_capacity_value"),
    ({"sessions": 2.5}, "invalid_capacity_value"),
    ({"provider.ecs": 3}, "unknown_provider"),
    ({"key.Acme": 0.5}, "unknown_capacity"),
])
def test_a_wrong_change_names_what_to_send(change: dict[str, object], code: str) -> None:
    with pytest.raises(ApiError) as refused:
        checked(change, {}, FLOORS, {"acme"})
    assert refused.value.code == code


def test_min_and_max_may_move_together_in_one_change() -> None:
    assert checked({"reserve.min": 9, "reserve.max": 12}, {}, FLOORS, set()) == {"reserve.min": 9, "reserve.max": 12}


def test_the_reserve_is_refused_where_there_is_none() -> None:
    with pytest.raises(ApiError) as refused:
        checked({"reserve.max": 3}, {}, Floors(50, 0.5, None, "fly"), set())
    assert refused.value.code == "reserve_off"


def test_a_target_pins_the_reserve_within_its_bounds() -> None:
    assert (reserve_settings({}, RESERVE).min_idle, reserve_settings({}, RESERVE).max_idle) == (1, 4)
    pinned = reserve_settings({"reserve.target": 3}, RESERVE)
    assert (pinned.min_idle, pinned.max_idle) == (3, 3)
    capped = reserve_settings({"reserve.target": 30, "reserve.max": 8}, RESERVE)
    assert (capped.min_idle, capped.max_idle) == (8, 8)
    raised = reserve_settings({"reserve.target": 1, "reserve.min": 2}, RESERVE)
    assert (raised.min_idle, raised.max_idle) == (2, 2)

