"""The release judge's conversation rules (dispatcher/releases/health.py, conversation.py) on seeded
sessions: turn latency, unanswered turns, bot turns cut off, callers who left within the first turn."""

from __future__ import annotations

import math
import random
import re
from dataclasses import replace

import pytest

from botchannel.conversation import MAX_LATENCIES, conversation_figures
from dispatcher.releases.conversation import Talk, talk_of
from dispatcher.releases.health import HealthRule, ReleaseHealth, SessionOutcome
from dispatcher.releases.health_settings import health_rule
from dispatcher.releases.health_window import Entry, Sample, Window

SLOWER_WITHIN = 40  # a canary 1 s slower per turn: rolled back within these many of its sessions


def talk(rng: random.Random, *, slower: float = 0.0, unanswered: float = 0.05, left: float = 0.03,
         cut_off: float = 0.1) -> Talk:
    """One session's conversation: its median answer about 0.9 s, 5 % of sessions with a turn left
    unanswered, 3 % of callers gone within the first turn, about a tenth of bot turns cut off."""
    turns = rng.randint(3, 12)
    return Talk(turn_latency=slower + rng.lognormvariate(math.log(0.9), 0.3), unanswered=rng.random() < unanswered,
                cut_off=sum(rng.random() < cut_off for _ in range(turns)) / turns, left_early=rng.random() < left)


def session(rng: random.Random, release: str, **kwargs: float) -> SessionOutcome:
    return SessionOutcome(release, False, False, 1.5, 120.0, 0.8, talk(rng, **kwargs))


def until_breach(rng: random.Random, limit: int, rule: HealthRule | None = None, **canary: float) -> tuple[int, str]:
    """Canary sessions (each beside 19 of the stable's, a 5 % canary, the stable's first 300) until a
    breach: how many, and its reason (limit + 1 and "": none)."""
    health = ReleaseHealth(rule)
    for _ in range(300):
        health.observe(session(rng, "stable"))
    for n in range(1, limit + 1):
        for _ in range(19):
            health.observe(session(rng, "stable"))
        health.observe(session(rng, "canary", **canary))
        if (breach := health.verdict("canary", "stable")) is not None:
            return n, breach.reason
    return limit + 1, ""


@pytest.mark.parametrize("seed", range(5))
def test_a_canary_1_s_slower_per_turn_is_breached_on_turn_latency_within_its_first_sessions(seed: int) -> None:
    sessions, reason = until_breach(random.Random(seed), SLOWER_WITHIN, slower=1.0)
    assert sessions <= SLOWER_WITHIN, f"not breached within {SLOWER_WITHIN} sessions"
    found = re.fullmatch(r"(median|p95) turn latency (\d+\.\d) s over (\d+) sessions \(stable: (\d+\.\d) s over \d+\)",
                         reason)
    assert found, reason
    assert float(found[2]) - float(found[4]) >= 0.7, reason


@pytest.mark.parametrize("seed", range(3))
def test_an_identical_conversation_is_never_judged_apart(seed: int) -> None:
    sessions, reason = until_breach(random.Random(seed), 600)
    assert reason == "", f"an identical canary breached after {sessions} sessions: {reason}"


def test_a_canary_that_leaves_turns_unanswered_is_breached_with_the_count() -> None:
    sessions, reason = until_breach(random.Random(7), 60, unanswered=0.5)
    assert sessions <= 40
    assert re.fullmatch(r"(\d+) of (\d+) sessions left a caller turn unanswered \(stable: \d+ of \d+\)", reason), reason


def test_a_canary_whose_callers_leave_within_the_first_turn_is_breached() -> None:
    sessions, reason = until_breach(random.Random(8), 60, left=0.5)
    assert sessions <= 40
    assert re.fullmatch(r"\d+ of \d+ callers left within the first turn \(stable: \d+ of \d+\)", reason), reason


def test_a_canary_whose_turns_are_cut_off_is_breached_on_that_share() -> None:
    sessions, reason = until_breach(random.Random(9), 60, cut_off=0.7)
    assert sessions <= 40
    assert re.fullmatch(r"(median|p75) bot turns cut off \d+ % over \d+ sessions \(stable: \d+ % over \d+\)",
                        reason), reason


def test_the_margin_is_the_rules_a_wider_one_lets_the_slower_canary_through() -> None:
    rule = HealthRule(turn_latency_margin_seconds=3.0)
    sessions, reason = until_breach(random.Random(0), 200, rule, slower=1.0)
    assert reason == ""


def test_sessions_without_figures_are_not_counted_for_the_conversation() -> None:
    health = ReleaseHealth(HealthRule(min_canary=12, min_stable=12))  # 12: the fewest a 99.95 % bound on a median needs
    rng = random.Random(3)
    for _ in range(50):
        health.observe(session(rng, "stable"))
    for _ in range(50):  # no figures: a caller who never joined, or a host that predates them
        health.observe(SessionOutcome("canary", False, False, 1.5, 120.0, 0.8, None))
    assert health.verdict("canary", "stable") is None
    for _ in range(11):  # 3 s more every turn, in too few sessions yet
        health.observe(session(rng, "canary", slower=3.0))
    assert health.verdict("canary", "stable") is None
    health.observe(session(rng, "canary", slower=3.0))  # the twelfth: judged on those twelve alone
    breach = health.verdict("canary", "stable")
    assert breach is not None and breach.signal == "turn_latency" and "over 12 sessions" in breach.reason


def test_the_window_forgets_a_sessions_conversation_with_the_session() -> None:
    window = Window(size=2, max_age=100.0, history_cap=10)
    slow = Talk(2.0, True, 0.5, True)
    window.add(Entry(1.0, None, 1.0, 0.5, slow, None))
    window.add(Entry(2.0, None, 1.0, 0.5, None, None))
    window.add(Entry(3.0, None, 1.0, 0.5, Talk(0.8, False, 0.0, False), None))
    recent = window.recent
    assert (recent.talked, recent.unanswered, recent.left_early) == (1, 0, 0)
    assert recent.turn_latency == [0.8] and recent.cut_off == [0.0]
    assert Sample.of(window.history).turn_latency == [0.8, 2.0]


def test_a_sessions_figures_become_its_median_latency_and_shares() -> None:
    figures = {"caller_turns": 4, "unanswered": 1, "bot_turns": 5, "cut_off": 2, "latencies": [0.9, 3.0, 0.7],
               "left_in_first_turn": False}
    assert talk_of(figures) == Talk(turn_latency=0.9, unanswered=True, cut_off=0.4, left_early=False)
    assert talk_of({**figures, "latencies": [], "bot_turns": 0, "cut_off": 0}) == Talk(None, True, None, False)


@pytest.mark.parametrize("bad", [
    {"latencies": [0.5] * (MAX_LATENCIES + 1)}, {"latencies": [float("nan")]}, {"latencies": [-1.0]},
    {"unanswered": 9}, {"cut_off": 6}, {"caller_turns": "4"}, {"left_in_first_turn": 1}, {"bot_turns": True},
])
def test_figures_not_of_the_contracts_shape_are_dropped_whole(bad: dict[str, object]) -> None:
    figures = {"caller_turns": 4, "unanswered": 1, "bot_turns": 5, "cut_off": 2, "latencies": [0.9],
               "left_in_first_turn": False}
    assert conversation_figures(figures) is not None
    assert conversation_figures({**figures, **bad}) is None
    assert talk_of({**figures, **bad}) is None


def test_a_stored_talk_reads_back_and_anything_else_reads_as_none() -> None:
    kept = Talk(1.25, False, 0.2, True)
    assert Talk.from_stored(kept.stored()) == kept
    assert Talk.from_stored(replace(kept, turn_latency=None, cut_off=None).stored()) == Talk(None, False, None, True)
    for raw in (None, [1.0, False, 0.2], ["1", False, 0.2, True], [1.0, 0, 0.2, True], {"a": 1}):
        assert Talk.from_stored(raw) is None


def test_a_deployment_sets_the_conversation_margins_and_a_share_past_1_is_refused_by_name() -> None:
    rule = health_rule({"RELEASE_HEALTH_TURN_LATENCY_MARGIN_SECONDS": "0.8",
                        "RELEASE_HEALTH_CONVERSATION_MARGIN": "0.1", "RELEASE_HEALTH_CUT_OFF_MARGIN": "0.3"})
    assert (rule.turn_latency_margin_seconds, rule.conversation_margin, rule.cut_off_margin) == (0.8, 0.1, 0.3)
    assert health_rule({}) == HealthRule()  # the catalogue's defaults are the rule's own
    with pytest.raises(ValueError, match="RELEASE_HEALTH_CONVERSATION_MARGIN"):
        health_rule({"RELEASE_HEALTH_CONVERSATION_MARGIN": "5"})


@pytest.mark.parametrize(("sample", "breached"), [(11, True), (10, False)])
def test_11_sessions_each_are_the_fewest_that_judge_a_canary_slower_at_every_turn(sample: int, breached: bool) -> None:
    """RELEASE_HEALTH_MIN_CANARY and _MIN_STABLE at 11, the fewest whose order statistics bound a median
    at the rule's 99.95 % (0.5 ** 11 = 0.049 %: the canary's quickest turn against the stable's slowest),
    as tests/releases/test_slow_turn_canary.py sets them: a canary 1 s slower at every turn, its turns
    spread as the stable's are, is breached on its 11th session; at 10 each no median is bounded."""
    health = ReleaseHealth(HealthRule(min_canary=sample, min_stable=sample))
    for n in range(sample):
        for release, slower in (("stable", 0.0), ("canary", 1.0)):
            turn = Talk(turn_latency=0.9 + slower + 0.02 * n, unanswered=False, cut_off=0.0, left_early=False)
            health.observe(SessionOutcome(release, False, False, 1.5, 120.0, 0.8, turn))
    breach = health.verdict("canary", "stable")
    assert (breach is not None) is breached, breach
    if breach is not None:
        assert breach.reason == f"median turn latency 2.0 s over {sample} sessions (stable: 1.0 s over {sample})"
