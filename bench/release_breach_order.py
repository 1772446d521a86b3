"""The automatic rollback when a broken canary's failures come first and the stable release's
sample after (a stable release with no sample yet: a new deployment, or one whose sample aged out):
how long the canary keeps its traffic once the stable release's sample reaches its minimum, and how
many more of its callers fail meanwhile. Sessions are judged in the order they end (a canary whose
machines die at boot fails within a second; a stable session lasts minutes), with the dispatcher's
own choice of what to judge after each (release_watch.live_canaries), and, for comparison, with
the canary judged only when one of its own sessions ends. Part of bench/release_false_rollbacks.py.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable

from dispatcher.releases.health import HealthRule, ReleaseHealth, SessionOutcome
from dispatcher.releases.traffic import Traffic as Weights
from dispatcher.sessions.release_watch import live_canaries

HORIZON_SECONDS = 4 * 3600.0  # starts simulated per trial: far more than either minimum sample needs


def breach_after_stable_minimum(rng: random.Random, rule: HealthRule, per_minute: float, share: float,
                                stable: Callable[[random.Random], SessionOutcome], canary: SessionOutcome,
                                *, every_session: bool) -> tuple[float, int] | None:
    """One trial: seconds from the stable's minimum sample to the rollback, and the canary's sessions
    ended meanwhile; None where the stable release's sample was complete before the canary's."""
    now = 0.0
    health = ReleaseHealth(rule, clock=lambda: now)
    weights = Weights({"stable": 100 - round(share * 100), "canary": round(share * 100)}, "stable", (1, ""))
    ends: list[tuple[float, int, SessionOutcome]] = []
    start = 0.0
    while start < HORIZON_SECONDS:
        start += rng.expovariate(per_minute / 60.0)
        if rng.random() < share:
            heapq.heappush(ends, (start + 1.0, len(ends), canary))  # its machine exits at boot
            continue
        outcome = stable(rng)
        lasted = (outcome.ready_seconds or 0.0) + (outcome.ended_within_seconds or 0.0)
        heapq.heappush(ends, (start + lasted, len(ends), outcome))
    stable_seen, canary_seen, minimum_at, failed_since = 0, 0, math.inf, 0
    while ends:
        now, _, outcome = heapq.heappop(ends)
        health.observe(outcome)
        if outcome.release == "stable":
            stable_seen += 1
            if stable_seen == rule.min_stable:
                if canary_seen < rule.min_canary:
                    return None  # the stable's sample came first: not the order this measures
                minimum_at = now
        else:
            canary_seen += 1
            failed_since += now > minimum_at
        if not every_session and outcome.release != "canary":
            continue
        if any(health.verdict(name, "stable") is not None for name in live_canaries(weights)):
            return now - minimum_at, failed_since
    return None


def order_lines(rng: random.Random, rule: HealthRule, per_minute: float, trials: int,
                stable: Callable[[random.Random], SessionOutcome], canary: SessionOutcome) -> list[str]:
    lines = ["| canary share | judged after | trials in this order | median s from the stable's minimum to "
             "rollback | max | canary sessions failed meanwhile, median | max |", "|---|---|---|---|---|---|---|"]
    for percent in (20, 50):
        seeds = [rng.random() for _ in range(trials)]  # the same sessions for both ways of judging
        for every_session, label in ((True, "every session (the dispatcher)"), (False, "the canary's sessions only")):
            found = [breach_after_stable_minimum(random.Random(seed), rule, per_minute, percent / 100, stable, canary,
                                                 every_session=every_session) for seed in seeds]
            kept = sorted(f for f in found if f is not None)
            if not kept:
                lines.append(f"| {percent} % | {label} | 0 of {trials} | – | – | – | – |")
                continue
            waits, failed = sorted(w for w, _ in kept), sorted(n for _, n in kept)
            lines.append(f"| {percent} % | {label} | {len(kept)} of {trials} | {waits[len(waits) // 2]:.1f} | "
                         f"{waits[-1]:.1f} | {failed[len(failed) // 2]} | {failed[-1]} |")
    return lines
