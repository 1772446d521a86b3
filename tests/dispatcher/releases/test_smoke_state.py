"""A release's smoke state inside the traffic: the gate on every operator change, the verdict's
transitions, and the record's form (what another replica or region reads)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dispatcher.errors import ApiError
from dispatcher.releases.catalogue import Catalogue, Release
from dispatcher.releases.smoke import Smoke
from dispatcher.releases.traffic import Traffic

V = (1, "")


def fresh(canary: int = 10) -> Traffic:
    """As a stack's first configuration: `a` serves, `b` waits for its smoke at the canary percent."""
    return Traffic.first(Catalogue((Release("a", {"*": "img-a"}), Release("b", {"*": "img-b"})),
                                   canary_percent=canary), V)


@pytest.mark.parametrize("change", [
    lambda t: t.with_weight("b", 5, "admin", (2, "")),
    lambda t: t.with_weights({"a": 95, "b": 5}, "admin", (2, "")),
    lambda t: t.promoted("b", "admin", (2, "")),
])
def test_no_operator_change_gives_an_unsmoked_release_traffic_and_the_refusal_names_the_way_out(
        change: Callable[[Traffic], Traffic]) -> None:
    with pytest.raises(ApiError) as refused:
        change(fresh())
    assert (refused.value.status, refused.value.code) == (409, "release_not_smoke_tested")
    assert "voicefleet releases smoke b" in refused.value.message and "POST /releases/b/smoke" in refused.value.message


def test_a_weight_of_0_and_a_rollback_are_never_refused_by_the_gate() -> None:
    assert fresh().with_weight("b", 0, "admin", (2, "")).weights == {"a": 100, "b": 0}
    assert fresh().with_weight("a", 100, "admin", (2, "")).weights == {"a": 100, "b": 0}


def test_a_failed_smoke_keeps_the_gate_shut_with_the_bots_error_and_another_may_be_asked_for() -> None:
    running = fresh().smoke_started("b", "s1", 100.0, 180.0, "admin", (2, ""))
    failed = running.smoke_ended("b", "s1", "the bot reported an error: boom", 110.0, (3, ""))
    assert failed.weights == {"a": 100, "b": 0}
    assert failed.smoke_of("b") == Smoke("failed", "s1", "the bot reported an error: boom", 110.0, 10)
    with pytest.raises(ApiError) as refused:
        failed.with_weight("b", 5, "admin", (4, ""))
    assert "boom" in refused.value.message
    again = failed.smoke_started("b", "s2", 120.0, 180.0, "admin", (5, ""))
    assert again.smoke_of("b").status == "running" and again.smoke_of("b").session_id == "s2"


def test_one_smoke_at_a_time_unless_the_running_one_outlived_its_deadline() -> None:
    running = fresh().smoke_started("b", "s1", 100.0, 180.0, "admin", (2, ""))
    with pytest.raises(ApiError) as refused:
        running.smoke_started("b", "s2", 200.0, 180.0, "admin", (3, ""))
    assert refused.value.code == "smoke_running" and refused.value.extra == {"session_id": "s1"}
    assert running.smoke_started("b", "s2", 281.0, 180.0, "admin", (3, "")).smoke_of("b").session_id == "s2"


def test_a_verdict_on_a_session_that_is_not_the_running_one_changes_nothing() -> None:
    running = fresh().smoke_started("b", "s1", 100.0, 180.0, "admin", (2, ""))
    passed = running.smoke_ended("b", "s1", None, 110.0, (3, ""))
    assert running.smoke_ended("b", "other", None, 110.0, (3, "")) is running
    assert passed.smoke_ended("b", "s1", "late error", 120.0, (4, "")) is passed  # decided once
    assert passed.weights == {"a": 90, "b": 10}


def test_a_passed_release_is_not_smoked_again_and_the_stable_one_counts_as_passed() -> None:
    with pytest.raises(ApiError) as refused:
        fresh().smoke_started("a", "s1", 100.0, 180.0, "admin", (2, ""))
    assert refused.value.code == "smoke_already_passed"


def test_releases_named_by_release_weights_count_as_passed_the_rest_wait() -> None:
    releases = tuple(Release(n, {"*": f"img-{n}"}) for n in ("a", "b", "c"))
    first = Traffic.first(Catalogue(releases, first_weights={"a": 90, "b": 10}), V)
    assert first.weights == {"a": 90, "b": 10, "c": 0}
    assert first.smoke_of("b").passed and first.smoke_of("c") == Smoke("pending")


def test_the_smoke_state_travels_in_the_record_and_a_bad_one_makes_the_record_untrusted() -> None:
    running = fresh().smoke_started("b", "s1", 100.0, 180.0, "admin", (2, ""))
    assert Traffic.from_json(running.to_json()) == running
    record = running.to_json()
    for bad in ({"status": "maybe"}, {"status": "failed", "reason": "x" * 600}, {"status": "passed", "canary": 101}):
        assert Traffic.from_json({**record, "smoke": {"b": bad}}) is None
    assert Traffic.from_json({**record, "smoke": {"a": {"status": "pending"}}}) is None  # the stable one serves
    assert Traffic.from_json({**record, "smoke": {"zz": {"status": "passed"}}}) is None  # no such release
