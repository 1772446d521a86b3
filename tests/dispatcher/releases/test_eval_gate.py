"""A release smoked by its scenario suite: the verdict's transitions inside the traffic (a pass opens
the gate at the canary percent, a failure shuts it, the stable release and a rollback's way back are
never shut), the plain smoke's refusals, and the record's form (what another replica reads)."""

from __future__ import annotations

import pytest

from dispatcher.errors import ApiError
from dispatcher.releases.catalogue import Catalogue, Release
from dispatcher.releases.eval_gate import plain_smoke_refusal, with_eval
from dispatcher.releases.eval_verdict import MAX_KEPT_SESSIONS, EvalVerdict
from dispatcher.releases.traffic import Traffic

V = (1, "")
SUITE = "ab" * 32


def fresh(canary: int = 10) -> Traffic:
    """`a` serves, `b` waits for its smoke at the canary percent."""
    return Traffic.first(Catalogue((Release("a", {"*": "img-a"}), Release("b", {"*": "img-b"})),
                                   canary_percent=canary), V)


def verdict(sessions: int = 3, failed: int = 0) -> EvalVerdict:
    ids = [f"s{n}" for n in range(sessions)]
    return EvalVerdict.of(SUITE, ids, ids[:failed], 100.0, "admin-1")


def test_a_passing_suite_lets_a_waiting_release_in_at_its_canary_percent_with_the_verdict_kept() -> None:
    passed = with_eval(fresh(), "b", verdict(), (2, ""))
    assert passed.weights == {"a": 90, "b": 10}
    smoke = passed.smoke_of("b")
    assert smoke.status == "passed" and smoke.eval == verdict()
    assert (smoke.eval.passed, smoke.eval.runs, smoke.eval.sessions) == (3, 3, ("s0", "s1", "s2"))
    assert passed.changed_by == "admin-1"
    assert passed.reason == f"b: eval suite {SUITE[:12]} passed 3/3; 10% of the traffic"
    assert passed.with_weight("b", 50, "admin", (3, "")).weights == {"a": 50, "b": 50}


def test_a_failing_suite_shuts_the_gate_naming_its_counts_until_a_later_run_passes() -> None:
    failed = with_eval(fresh(), "b", verdict(3, 1), (2, ""))
    assert failed.weights == {"a": 100, "b": 0} and failed.smoke_of("b").status == "failed"
    with pytest.raises(ApiError) as refused:
        failed.with_weight("b", 10, "admin", (3, ""))
    assert refused.value.code == "release_not_smoke_tested"
    assert f"eval suite {SUITE[:12]} passed 2/3" in refused.value.message
    assert "--suite PATH" in refused.value.message
    again = with_eval(failed, "b", verdict(), (4, ""), checked_after=100.0)  # its calls after the failed run's
    assert again.weights == {"a": 90, "b": 10}


def test_a_failing_suite_never_takes_a_release_traffic_it_has_nor_shuts_the_stable_release() -> None:
    serving = with_eval(fresh(), "b", verdict(), (2, ""))
    failed = with_eval(serving, "b", verdict(3, 3), (3, ""), checked_after=100.0)
    assert failed.weights == {"a": 90, "b": 10}  # the automatic rollback judges what it does to callers
    with pytest.raises(ApiError):
        failed.with_weight("b", 20, "admin", (4, ""))
    stable = with_eval(fresh(), "a", verdict(3, 2), (2, ""))
    assert stable.smoke_of("a").status == "passed" and stable.smoke_of("a").eval == verdict(3, 2)
    assert Traffic.from_json(stable.to_json()) == stable  # a record whose stable release is open


def test_a_failing_suite_on_the_release_a_rollback_returns_to_leaves_the_rollback_open() -> None:
    promoted = with_eval(fresh(), "b", verdict(), (2, "")).promoted("b", "admin", (3, ""))
    assert promoted.previous_stable == "a"
    failed = with_eval(promoted, "a", verdict(3, 3), (4, ""))
    assert failed.rolled_back("admin", (5, "")).weights == {"a": 100, "b": 0}


def test_a_plain_smoke_is_refused_where_evals_are_required_and_after_a_failing_suite() -> None:
    required = plain_smoke_refusal(fresh(), "b", required=True)
    assert required is not None and (required.status, required.code) == (409, "eval_required")
    assert "voicefleet releases smoke b --suite PATH" in required.message
    assert "RELEASE_EVAL_REQUIRED" in required.message
    assert plain_smoke_refusal(fresh(), "b", required=False) is None
    failed = plain_smoke_refusal(with_eval(fresh(), "b", verdict(3, 1), (2, "")), "b", required=False)
    assert failed is not None and failed.code == "eval_failed" and "passed 2/3" in failed.message


def test_the_verdict_survives_the_record_and_a_smoke_session_of_the_release() -> None:
    recorded = with_eval(fresh(), "b", verdict(3, 1), (2, ""))
    read = Traffic.from_json(recorded.to_json())
    assert read == recorded
    running = recorded.smoke_started("b", "s9", 200.0, 180.0, "admin", (3, ""))
    assert running.smoke_of("b").eval == verdict(3, 1)


def test_a_record_with_a_verdict_that_is_no_verdict_is_not_trusted() -> None:
    record = with_eval(fresh(), "b", verdict(), (2, "")).to_json()
    for field, bad in (("suite", "not-a-hash"), ("passed", 4), ("runs", 0), ("sessions", "s1"), ("at", True)):
        broken = {**record, "smoke": {"b": {**record["smoke"]["b"], "eval": {**record["smoke"]["b"]["eval"],
                                                                             field: bad}}}}
        assert Traffic.from_json(broken) is None, field


def test_a_large_suite_keeps_its_counts_and_a_bounded_list_of_sessions_the_failed_first() -> None:
    ids = [f"s{n}" for n in range(400)]
    big = EvalVerdict.of(SUITE, ids, ids[-2:], 1.0, "admin")
    assert (big.passed, big.runs) == (398, 400)
    assert len(big.sessions) == MAX_KEPT_SESSIONS and big.sessions[:2] == ("s398", "s399")
    assert EvalVerdict.from_json(big.view()) == big


def test_a_verdict_for_a_release_the_traffic_does_not_hold_is_not_found_not_a_crash() -> None:
    with pytest.raises(ApiError) as refused:
        with_eval(fresh(), "c", verdict(), (2, ""))
    assert (refused.value.status, refused.value.code) == (404, "release_not_found")
    assert "`voicefleet releases`" in refused.value.message


def test_two_verdicts_sent_at_once_the_second_is_refused_as_checked_against_a_stale_record() -> None:
    """Both were checked against the same record (no verdict yet): the first recorded, the second, whose
    calls may predate it, is refused at its compare-and-write, not recorded over it."""
    first = with_eval(fresh(), "b", verdict(3, 1), (2, ""), checked_after=None)
    with pytest.raises(ApiError) as raced:
        with_eval(first, "b", verdict(), (3, ""), checked_after=None)
    assert raced.value.status == 409 and raced.value.code == "eval_verdict_raced"
    assert first.smoke_of("b").status == "failed"
