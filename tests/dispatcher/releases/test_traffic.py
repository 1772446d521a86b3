"""Traffic over the releases: every operator change, and what the deployment's own list does to it."""

from __future__ import annotations

import pytest

from dispatcher.errors import ApiError
from dispatcher.releases.catalogue import Catalogue, Release
from dispatcher.releases.smoke import Smoke
from dispatcher.releases.traffic import Traffic

V = (1, "")


def catalogue(*names: str, canary: int = 10) -> Catalogue:
    return Catalogue(tuple(Release(n, {"*": f"img-{n}"}) for n in names), canary_percent=canary)


def traffic(**weights: int) -> Traffic:
    stable = max(weights, key=weights.__getitem__)
    return Traffic(weights, stable, V)


def test_a_lone_release_takes_all_traffic_and_is_stable() -> None:
    first = Traffic.first(catalogue("a"), V)
    assert first.weights == {"a": 100} and first.stable == "a"


def test_first_traffic_of_several_keeps_the_newest_canary_percent_until_its_smoke_passes() -> None:
    first = Traffic.first(catalogue("a", "b", canary=5), V)
    assert first.weights == {"a": 100, "b": 0} and first.stable == "a"
    assert first.smoke_of("a").status == "passed" and first.smoke_of("b") == Smoke("pending", canary=5)
    running = first.smoke_started("b", "s1", 10.0, 120.0, "admin-1", (2, ""))
    passed = running.smoke_ended("b", "s1", None, 20.0, (3, ""))
    assert running.weights == {"a": 100, "b": 0} and passed.weights == {"a": 95, "b": 5}
    assert passed.smoke_of("b").status == "passed" and passed.changed_by == "smoke session"


def test_a_new_release_enters_once_at_the_canary_percent_taken_from_stable() -> None:
    before = Traffic.first(catalogue("a"), V)
    after = before.reconciled(catalogue("a", "b", canary=10), (2, ""))
    assert after.weights == {"a": 100, "b": 0} and after.stable == "a" and "b added" in after.reason
    assert after.smoke_of("b") == Smoke("pending", canary=10)
    moved = after.with_weight("b", 0, "admin-1", (3, ""))
    assert moved.reconciled(catalogue("a", "b"), (4, "")) is moved  # seen before: never re-entered


def test_a_release_no_longer_listed_gives_its_traffic_back_to_stable() -> None:
    after = traffic(a=70, b=30).reconciled(catalogue("a"), (2, ""))
    assert after.weights == {"a": 100}


def test_when_the_stable_release_is_dropped_the_busiest_one_takes_its_place() -> None:
    after = Traffic({"a": 50, "b": 40, "c": 10}, "a", V).reconciled(catalogue("b", "c"), (2, ""))
    assert after.stable == "b" and after.weights == {"b": 90, "c": 10}


def test_unchanged_configuration_is_no_change() -> None:
    same = traffic(a=90, b=10)
    stamped_once = same.reconciled(catalogue("a", "b"), (2, ""))  # a record from before lists were kept: stamped
    assert (stamped_once.weights, stamped_once.version) == (same.weights, same.version)
    assert stamped_once.reconciled(catalogue("a", "b"), (3, "")) is stamped_once


def test_setting_a_canary_weight_takes_the_rest_from_stable() -> None:
    after = traffic(a=90, b=10).with_weight("b", 50, "admin-1", (2, ""))
    assert after.weights == {"a": 50, "b": 50} and after.changed_by == "admin-1"


def test_setting_the_stable_weight_shares_the_rest_among_the_others_as_they_share_it_now() -> None:
    after = Traffic({"a": 80, "b": 10, "c": 10}, "a", V).with_weight("a", 40, "admin", (2, ""))
    assert after.weights == {"a": 40, "b": 30, "c": 30} and sum(after.weights.values()) == 100


def test_lowering_the_only_live_stable_release_is_refused() -> None:
    with pytest.raises(ApiError) as refused:
        Traffic({"a": 100, "b": 0}, "a", V).with_weight("a", 50, "admin", (2, ""))
    assert refused.value.code == "weights_not_100"


@pytest.mark.parametrize("weight", [-1, 101, 12.5, "10", True, None])
def test_a_weight_outside_whole_percent_is_refused(weight: object) -> None:
    with pytest.raises(ApiError) as refused:
        traffic(a=90, b=10).with_weight("b", weight, "admin", (2, ""))
    assert refused.value.status == 422 and refused.value.code == "invalid_weight"


def test_weights_set_at_once_must_add_up_to_100() -> None:
    with pytest.raises(ApiError) as refused:
        traffic(a=90, b=10).with_weights({"a": 50, "b": 40}, "admin", (2, ""))
    assert refused.value.code == "weights_not_100" and "90%" in refused.value.message


def test_an_unknown_release_is_refused_naming_the_live_ones() -> None:
    with pytest.raises(ApiError) as refused:
        traffic(a=90, b=10).with_weight("nope", 5, "admin", (2, ""))
    assert refused.value.code == "unknown_release" and refused.value.extra["releases"] == ["a", "b"]


def test_a_release_that_reaches_100_becomes_the_stable_one() -> None:
    after = traffic(a=90, b=10).promoted("b", "admin", (2, ""))
    assert after.weights == {"a": 0, "b": 100} and after.stable == "b"


def test_rollback_sends_everything_to_the_stable_release() -> None:
    after = traffic(a=50, b=50).with_weights({"a": 60, "b": 40}, "admin", (2, "")).rolled_back("admin", (3, ""))
    assert after.weights == {"a": 100, "b": 0} and after.stable == "a"


def test_rollback_with_nothing_to_roll_back_says_so() -> None:
    with pytest.raises(ApiError) as refused:
        traffic(a=100, b=0).rolled_back("admin", (2, ""))
    assert refused.value.status == 409 and refused.value.code == "nothing_to_roll_back"


def test_a_breach_holds_the_canary_at_zero_with_its_reason_until_an_operator_moves_it() -> None:
    held = traffic(a=90, b=10).breached("b", "8 of 10 sessions failed", (2, ""))
    assert held.weights == {"a": 100, "b": 0} and held.held == {"b": "8 of 10 sessions failed"}
    assert held.with_weight("b", 5, "admin", (3, "")).held == {}


def test_the_store_form_round_trips_and_refuses_what_is_not_traffic() -> None:
    original = traffic(a=90, b=10).breached("b", "why", (5, "eu"))
    assert Traffic.from_json(original.to_json()) == original
    assert Traffic.from_json({"weights": {"a": 50}, "stable": "a", "version": [1, ""]}) is None  # not 100
    assert Traffic.from_json({"weights": "x"}) is None and Traffic.from_json(None) is None


def test_the_latest_version_wins_whatever_region_made_it() -> None:
    assert Traffic({"a": 100}, "a", (2, "us")).newer_than(Traffic({"a": 100}, "a", (1, "eu")))
    assert not Traffic({"a": 100}, "a", (1, "us")).newer_than(Traffic({"a": 100}, "a", (1, "us")))


def stamped(*names: str, created: str) -> Catalogue:
    return Catalogue(tuple(Release(n, {"*": f"img-{n}"}, created) for n in names), canary_percent=10)


def test_during_a_rolling_deploy_a_replica_on_the_older_list_never_changes_the_traffic() -> None:
    old, new = stamped("a", "b", created="2026-11-20T00:00:00Z"), stamped("b", "c", created="2026-11-25T00:00:00Z")
    first = Traffic.first(old, V)
    fitted = first.reconciled(new, (2, ""))  # a replaced replica fits it to the new list
    assert fitted.weights == {"b": 100, "c": 0} and fitted.generation == new.generation
    assert fitted.smoke_of("b").passed and fitted.smoke_of("c").status == "pending"  # b serves: a is gone
    for n in range(3, 10):  # the replicas not yet replaced read it every second: no flip back
        assert fitted.reconciled(old, (n, "")) is fitted


def test_a_list_that_only_drops_wins_a_tie_and_the_longer_one_never_adds_back() -> None:
    both, fewer = stamped("a", "b", created="2026-11-25T00:00:00Z"), stamped("b", created="2026-11-25T00:00:00Z")
    traffic = Traffic({"a": 90, "b": 10}, "a", V, listed=("a", "b"), generation=both.generation)
    dropped = traffic.reconciled(fewer, (2, ""))
    assert dropped.weights == {"b": 100} and dropped.listed == ("b",)
    assert dropped.reconciled(both, (3, "")) is dropped  # the old list's "a" is never re-added


def test_an_operators_change_keeps_the_list_the_traffic_was_fitted_to() -> None:
    new = stamped("b", "c", created="2026-11-25T00:00:00Z")
    fitted = Traffic.first(new, V).smoke_started("c", "s1", 1.0, 120.0, "admin", (2, ""))
    fitted = fitted.smoke_ended("c", "s1", None, 2.0, (3, ""))
    assert fitted.with_weight("c", 50, "admin", (4, "")).generation == new.generation


def test_rollback_right_after_a_promote_returns_to_the_release_stable_before_it_once() -> None:
    promoted = traffic(a=90, b=10).promoted("b", "admin", (2, ""))
    assert (promoted.stable, promoted.previous_stable) == ("b", "a")
    back = promoted.rolled_back("admin", (3, ""))
    assert back.weights == {"a": 100, "b": 0} and back.stable == "a" and back.previous_stable == ""
    assert back.reason == "rolled back from b to a, the stable release before b was promoted"
    with pytest.raises(ApiError) as refused:  # once: not forward again to b
        back.rolled_back("admin", (4, ""))
    assert refused.value.code == "nothing_to_roll_back"


def test_a_canary_rolled_back_after_a_promote_keeps_the_way_back_and_the_record_carries_it() -> None:
    promoted = traffic(a=100, b=0, c=0).with_weights({"b": 100}, "admin", (2, ""))
    canary = promoted.with_weight("c", 10, "admin", (3, ""))
    assert canary.previous_stable == "a"
    first = canary.rolled_back("admin", (4, ""))
    assert first.weights == {"a": 0, "b": 100, "c": 0} and first.reason == "rolled back to b (c from 10% to 0%)"
    assert Traffic.from_json(first.to_json()) == first
    assert first.rolled_back("admin", (5, "")).stable == "a"


def test_a_record_naming_a_previous_release_it_does_not_list_is_not_trusted() -> None:
    record = traffic(a=90, b=10).promoted("b", "admin", (2, "")).to_json()
    assert Traffic.from_json({**record, "previous_stable": "z"}) is None
