"""Automatic rollback (dispatcher/releases/health.py), simulated: how often it rolls back a canary
that is no worse than the stable release, and how many of a bad canary's sessions it takes.

    uv run --all-groups python -m bench.release_false_rollbacks                    # docs/releases.md
    uv run --all-groups python -m bench.release_false_rollbacks --days 2000 --trials 200   # the long run
    uv run --all-groups python -m bench.release_false_rollbacks --days 1000 --only incident   # one row of it

Traffic: `--per-minute` starts a minute (10), a `--canary-percent` share (5) on the canary, the rest
on the stable release. Sessions as callers feel them: 2 % fail (0.5 % start, 0.5 % bot error, 1 %
hang up within 5 s), ready ~ lognormal around 1.5 s, first audio ~ lognormal around 0.8 s; each
session whose caller joined has a conversation (`Callers.talk`: each session's median answer ~
lognormal around 0.9 s, 5 % with a turn left unanswered, 3 % of callers gone within the first turn,
a tenth of bot turns cut off). Each
canary-day starts a fresh canary (the riskiest part of its life: its first sessions are judged on
the smallest sample) beside a stable release whose window runs on; a day ends at a rollback.
Detection: the same traffic with a canary whose every session's bot raises, one whose every machine
dies at boot before its bot reports (judged from the provider's word on the machine, through the
dispatcher's own reading of such a timeline), one whose answers come 3 s late, one whose sessions
fail 10 % of the time, one 1 s slower every turn and one that leaves a turn unanswered in 20 % of its
sessions, counting its sessions until the breach. Then the same bad canaries after an
operator's weight change, from the canary percent to 20 % and 50 % at its first session (as
`voicefleet releases set` does after a passed smoke): the samples that change restarts are the
dispatcher's own decision (release_watch.judged_afresh), and the stable release's sample runs on.
Every canary is judged after each session of either release, as the dispatcher does. Last, the
order in which the stable release's sample completes a breach (bench/release_breach_order.py).
Outcomes are drawn from pools made once from the seed (a bootstrap of 20,000 sessions each),
so that the judge, not the random draws, takes the time. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bench.release_breach_order import order_lines
from dispatcher.releases.conversation import Talk
from dispatcher.releases.health import HealthRule, ReleaseHealth, SessionOutcome
from dispatcher.releases.health_stats import regularized_beta
from dispatcher.releases.traffic import Traffic as Weights
from dispatcher.sessions.release_outcome import outcome_of
from dispatcher.sessions.release_watch import judged_afresh, live_canaries

POOL = 20_000
DAY_SECONDS = 86_400.0


@dataclass(frozen=True)
class Callers:
    """One release's sessions as callers feel them."""

    failed_start: float = 0.005
    bot_error: float = 0.005
    ended_early: float = 0.01
    ready_median: float = 1.5
    ready_sigma: float = 0.35
    first_audio_median: float = 0.8
    first_audio_sigma: float = 0.3
    late: float = 0.0  # seconds added to every first audio
    dies_at_boot: float = 0.0  # machines that exit before their bot reports anything
    # The conversation (dispatcher/releases/conversation.py), in every session whose caller joined:
    turn_latency_median: float = 0.9  # each session's median answer, lognormal across sessions
    turn_latency_sigma: float = 0.3
    slower: float = 0.0  # seconds added to every answer
    unanswered: float = 0.05  # sessions with a caller turn left unanswered
    left_early: float = 0.03  # callers who leave within the first turn (and every one who hangs up within 5 s)
    cut_off: float = 0.1  # each of a session's 3 to 12 bot turns cut off by the caller

    def draw(self, rng: random.Random, release: str) -> SessionOutcome:
        if self.dies_at_boot and rng.random() < self.dies_at_boot:  # no draw for other callers: same pools
            return died_at_boot(release)
        roll = rng.random()
        failed_start = roll < self.failed_start
        bot_error = not failed_start and roll < self.failed_start + self.bot_error
        early = roll < self.failed_start + self.bot_error + self.ended_early
        if failed_start:
            return SessionOutcome(release, True, False, None, None, None)
        return SessionOutcome(
            release, False, bot_error, rng.lognormvariate(math.log(self.ready_median), self.ready_sigma),
            rng.uniform(1.0, 4.9) if early else rng.lognormvariate(math.log(180.0), 1.0),
            self.late + rng.lognormvariate(math.log(self.first_audio_median), self.first_audio_sigma),
            self.talk(rng, early and not bot_error))

    def talk(self, rng: random.Random, hung_up: bool) -> Talk:
        turns = rng.randint(3, 12)
        return Talk(self.slower + rng.lognormvariate(math.log(self.turn_latency_median), self.turn_latency_sigma),
                    rng.random() < self.unanswered, sum(rng.random() < self.cut_off for _ in range(turns)) / turns,
                    hung_up or rng.random() < self.left_early)


def died_at_boot(release: str) -> SessionOutcome:
    """What the dispatcher makes of a session whose machine exited before its bot said anything."""
    outcome = outcome_of([{"event": "requested", "at": 0.0, "release": release, "release_chosen_by": "weight"},
                          {"event": "launched", "at": 0.1},
                          {"event": "machine_ended", "at": 0.9, "state": "failed", "detail": "exit code 1"}])
    assert outcome is not None
    return outcome


STABLE = Callers()
CANARIES: dict[str, Callers] = {
    "identical": STABLE,
    "bot() raises": replace(STABLE, failed_start=0.0, bot_error=1.0, ended_early=0.0),
    "machine dies at boot": replace(STABLE, dies_at_boot=1.0),
    "answers 3 s late": replace(STABLE, late=3.0),
    "10 % fail": replace(STABLE, bot_error=0.085),
    "1 s slower per turn": replace(STABLE, slower=1.0),
    "20 % leave a turn unanswered": replace(STABLE, unanswered=0.2),
}
# A provider's bad quarter of an hour, the same for every release: 30 % of starts fail, answers 2 s late.
INCIDENT, INCIDENT_SECONDS = replace(STABLE, failed_start=0.3, late=2.0, slower=2.0), 900.0


class Traffic:
    """Poisson starts split by weight, on a simulated clock the judge reads."""

    def __init__(self, rng: random.Random, per_minute: float, canary_share: float, rule: HealthRule) -> None:
        self.rng, self.rate, self.share = rng, per_minute / 60.0, canary_share
        self.now = 0.0
        self.stable = pool(rng, STABLE, "stable")
        self.incident = {"stable": pool(rng, INCIDENT, "stable"), "canary": pool(rng, INCIDENT, "canary")}
        self.health = ReleaseHealth(rule, clock=lambda: self.now)
        for _ in range(rule.window):  # the stable release has run for a while already
            self.health.observe(self.stable[rng.randrange(POOL)])

    def canary_until_breach(self, canary: list[SessionOutcome], *, limit: int | None = None, until: float = math.inf,
                            incident_at: float = math.inf, raised_to: float | None = None) -> int | None:
        """Runs a fresh canary; its sessions until a breach, or None (the limit or time reached).
        `raised_to`: an operator sets the canary to this share at its first session."""
        self.health.reset("canary")
        sessions, rng, incident_ends, share = 0, self.rng, incident_at + INCIDENT_SECONDS, self.share
        weights = Weights({"stable": 100 - round(share * 100), "canary": round(share * 100)}, "stable", (1, ""))
        while self.now < until and (limit is None or sessions < limit):
            if raised_to is not None and sessions == 1 and share != raised_to:
                share, before = raised_to, weights
                weights = before.with_weight("canary", round(raised_to * 100), "operator", (2, ""))
                for name in judged_afresh(before, weights, self.health.breached):  # the dispatcher's own choice
                    self.health.reset(name)
            self.now += rng.expovariate(self.rate)
            in_incident = incident_at <= self.now < incident_ends
            if rng.random() >= share:
                self.health.observe((self.incident["stable"] if in_incident else self.stable)[rng.randrange(POOL)])
            else:
                sessions += 1
                self.health.observe((self.incident["canary"] if in_incident else canary)[rng.randrange(POOL)])
            # Judged after every session of either release, as the dispatcher does (release_watch.judge).
            if any(self.health.verdict(name, "stable") is not None for name in live_canaries(weights)):
                return sessions
        return None


def pool(rng: random.Random, callers: Callers, release: str) -> list[SessionOutcome]:
    return [callers.draw(rng, release) for _ in range(POOL)]


@dataclass(frozen=True)
class Detection:
    canary: str
    sessions: list[int]  # canary sessions until the breach, per trial that breached
    missed: int  # trials not breached within a day of the canary's traffic

    def line(self, canary_per_minute: float) -> str:
        ordered = sorted(self.sessions)
        if not ordered:
            return f"| {self.canary} | – | – | – | – | {self.missed} of {self.missed} |"
        median, p95 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return (f"| {self.canary} | {median} | {p95} | {ordered[-1]} | {median / canary_per_minute:.0f} min | "
                f"{self.missed} of {len(ordered) + self.missed} |")


def false_rollbacks(traffic: Traffic, days: int, incidents: bool) -> int:
    """Canary-days of a canary identical to the stable release that ended in a rollback."""
    canary = pool(traffic.rng, CANARIES["identical"], "canary")
    rolled_back = 0
    for _ in range(days):  # a rollback ends the day: the next starts at once with a fresh canary
        start = traffic.now
        incident_at = start + traffic.rng.uniform(0, DAY_SECONDS - INCIDENT_SECONDS) if incidents else math.inf
        if traffic.canary_until_breach(canary, until=start + DAY_SECONDS, incident_at=incident_at) is not None:
            rolled_back += 1
    return rolled_back


def detection(traffic: Traffic, canary: str, trials: int, day_sessions: int, raised_to: float | None = None,
              label: str | None = None) -> Detection:
    outcomes = pool(traffic.rng, CANARIES[canary], "canary")
    found = [traffic.canary_until_breach(outcomes, limit=day_sessions, raised_to=raised_to) for _ in range(trials)]
    return Detection(label or canary, [n for n in found if n is not None], sum(n is None for n in found))


def upper_bound(events: int, trials: int, confidence: float = 0.95) -> float:
    """The one-sided Clopper–Pearson upper bound on a rate seen `events` times in `trials`."""
    if events >= trials:
        return 1.0
    low, high = events / trials, 1.0
    for _ in range(60):  # P(Bin(trials, x) ≤ events) = 1 − I_x(events + 1, trials − events), falling in x
        middle = (low + high) / 2
        if 1.0 - regularized_beta(events + 1, trials - events, middle) > 1.0 - confidence:
            low = middle
        else:
            high = middle
    return high


def main(argv: list[str] | None = None, out: Callable[[str], None] = print) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--days", type=int, default=100, help="canary-days of two identical releases, each way")
    parser.add_argument("--trials", type=int, default=50, help="bad canaries of each kind")
    parser.add_argument("--per-minute", type=float, default=10.0)
    parser.add_argument("--canary-percent", type=float, default=5.0)
    parser.add_argument("--min-canary", type=int, default=HealthRule.min_canary, help="the rule's minimum sample")
    parser.add_argument("--confidence", type=float, default=HealthRule.confidence, help="the rule's confidence")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", choices=("no-incident", "incident"),
                        help="only this row of the identical releases' table (a long run, one row a process)")
    args = parser.parse_args(argv)
    began = time.perf_counter()
    share, rule = args.canary_percent / 100.0, HealthRule(min_canary=args.min_canary, confidence=args.confidence)
    traffic = Traffic(random.Random(args.seed), args.per_minute, share, rule)
    canary_per_minute = args.per_minute * share
    day_sessions = round(canary_per_minute * 1440)
    out(f"Rule: window {rule.window} sessions / {rule.max_age_seconds / 3600:.0f} h, minimum {rule.min_canary} "
        f"canary and {rule.min_stable} stable sessions, confidence {rule.confidence}, failure margin "
        f"{rule.failure_margin * 100:.0f} points, latency margin max({rule.latency_margin_seconds:.0f} s, "
        f"{rule.latency_margin_share * 100:.0f} %), turn latency margin max({rule.turn_latency_margin_seconds:g} s, "
        f"{rule.latency_margin_share * 100:.0f} %), conversation margin {rule.conversation_margin * 100:.0f} points, "
        f"cut-off margin {rule.cut_off_margin * 100:.0f} points. Traffic: {args.per_minute:g} starts/min, "
        f"{args.canary_percent:g} % canary ({day_sessions} canary sessions a day), seed {args.seed}.")
    out("")
    out("| identical releases | canary-days | false rollbacks | per canary-day | 95 % upper bound |")
    out("|---|---|---|---|---|")
    for label, incidents in (("no incident", False), ("a 15-min incident a day, every release", True)):
        if args.only is not None and incidents != (args.only == "incident"):
            continue
        rolled_back = false_rollbacks(traffic, args.days, incidents)
        out(f"| {label} | {args.days} | {rolled_back} | {rolled_back / args.days:.4f} | "
            f"{upper_bound(rolled_back, args.days):.4f} |")
    if args.only is not None:
        out(f"({time.perf_counter() - began:.0f} s)")
        return
    out("")
    out("| bad canary | median sessions to rollback | p95 | max | median time | not rolled back in a day |")
    out("|---|---|---|---|---|---|")
    for canary in ("bot() raises", "answers 3 s late", "10 % fail", "machine dies at boot", "1 s slower per turn",
                   "20 % leave a turn unanswered"):
        out(detection(traffic, canary, args.trials, day_sessions).line(canary_per_minute))
    out("")
    out("After a weight change at the canary's first session (the stable release's sample runs on):")
    out("")
    out("| bad canary | median sessions to rollback | p95 | max | median time | not rolled back in a day |")
    out("|---|---|---|---|---|---|")
    for percent in (20, 50):
        for canary in ("bot() raises", "machine dies at boot", "answers 3 s late"):
            found = detection(traffic, canary, args.trials, day_sessions, raised_to=percent / 100,
                              label=f"{canary}, set to {percent} %")
            out(found.line(args.per_minute * percent / 100))
    out("")
    out(f"The canary's failures first (its machines die at boot), the stable release's sample after, from none; "
        f"{args.trials} trials each:")
    out("")
    for line in order_lines(traffic.rng, rule, args.per_minute, args.trials,
                            lambda rng: STABLE.draw(rng, "stable"), died_at_boot("canary")):
        out(line)
    out("")
    out(f"({time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
