"""Automatic rollback's judgement: does a canary release hurt callers compared with the stable one?

Each release keeps a window of its last `HealthRule.window` session outcomes, none older than
`max_age_seconds`. The window is counted in sessions, not minutes, so that a 5 % canary holds as
large a sample as the stable release (a 30-minute window would hold 15 of its sessions at 10 starts
a minute); the age bound keeps a quiet canary from being judged on the day before's sessions.

A canary is **breached** when, with at least `min_canary` sessions of it and `min_stable` of the
stable release in the windows, any of these holds:

- **failures**: a session failed if its start failed, its bot reported an error, or it ended within
  `SHORT_SESSION_SECONDS`. With a uniform prior on each release's failure rate, the posterior
  probability that the canary's rate exceeds the stable's by more than `failure_margin` is above
  `confidence`.
- **ready** (start → ready bot) and **first_audio** (joined → the caller hears the bot), among the
  sessions that report it: for each quantile judged (ready: the median, since a canary's smaller
  warm reserve sends a larger minority of its starts cold; first audio: the median and p75), the
  canary's lower confidence bound on that quantile exceeds the stable's upper bound by at least
  max(`latency_margin_seconds`, `latency_margin_share` × the stable's sample quantile). The bounds
  are distribution-free (order statistics), each at confidence 1 − (1 − `confidence`)/2, so both
  hold together with at least `confidence`.

Once breached a release stays breached, whatever later sessions show, until an operator changes its
traffic (`reset`): a rollback never undoes itself, and a release given traffic again is judged on
fresh sessions only. The stable release is never judged (it is what the others are measured by).
The false-rollback rate and detection speed of the defaults are measured by
bench/release_false_rollbacks.py (docs/releases.md).
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from dispatcher.releases.health_stats import probability_worse, quantile_ranks

SHORT_SESSION_SECONDS = 5.0  # a session that ends sooner than this counts as one that failed the caller

LatencySignal = Literal["ready", "first_audio"]
LATENCY_QUANTILES: dict[LatencySignal, tuple[float, ...]] = {"ready": (0.5,), "first_audio": (0.5, 0.75)}
_QUANTILE_NAMES = {0.5: "median", 0.75: "p75"}
_SIGNAL_NAMES: dict[LatencySignal, str] = {"ready": "time to ready", "first_audio": "first audio"}


@dataclass(frozen=True)
class SessionOutcome:
    """What one session of a release did to its caller. Observed once per session: at its end, or
    once it has been live longer than SHORT_SESSION_SECONDS (then `ended_within_seconds` is None)."""

    release: str
    failed_start: bool
    bot_error: bool
    ready_seconds: float | None  # start requested → bot ready; None when it never got there
    ended_within_seconds: float | None  # how long the session lasted; None while it is live
    first_audio_seconds: float | None = None  # joined → the bot's first audio, where the bot reports it

    @property
    def failure(self) -> str | None:
        """Why this session counts as failed, or None."""
        if self.failed_start:
            return "failed to start"
        if self.bot_error:
            return "bot error"
        if self.ended_within_seconds is not None and self.ended_within_seconds < SHORT_SESSION_SECONDS:
            return "ended early"
        return None


@dataclass(frozen=True)
class Breach:
    release: str
    signal: Literal["failures", "ready", "first_audio"]
    reason: str  # for people: "12 of 20 sessions failed (...) (stable: 0 of 140)"


@dataclass(frozen=True)
class Health:
    """A release's state as `GET /releases` shows it."""

    state: Literal["healthy", "watching", "breached"]
    reason: str | None


@dataclass(frozen=True)
class HealthRule:
    window: int = 300
    max_age_seconds: float = 12 * 3600.0
    min_canary: int = 20
    min_stable: int = 100
    confidence: float = 0.99
    failure_margin: float = 0.03  # percentage points (0.03 = 3 points) above the stable's rate
    latency_margin_seconds: float = 1.0
    latency_margin_share: float = 0.5  # of the stable's quantile

    def __post_init__(self) -> None:
        if not (0.5 < self.confidence < 1.0):
            raise ValueError(f"confidence must lie between 0.5 and 1, not {self.confidence}")
        if self.min_canary < 1 or self.min_stable < 1 or self.window < max(self.min_canary, self.min_stable):
            raise ValueError("the window must hold at least the minimum samples, each at least 1")


class _Window:
    """One release's recent outcomes, with each latency kept sorted for its quantile bounds."""

    def __init__(self) -> None:
        self.entries: deque[tuple[float, str | None, float | None, float | None]] = deque()  # at, failure, latencies
        self.failures: dict[str, int] = {}
        self.ready: list[float] = []
        self.first_audio: list[float] = []

    def add(self, at: float, outcome: SessionOutcome) -> None:
        entry = (at, outcome.failure, outcome.ready_seconds, outcome.first_audio_seconds)
        self.entries.append(entry)
        if entry[1] is not None:
            self.failures[entry[1]] = self.failures.get(entry[1], 0) + 1
        if entry[2] is not None:
            bisect.insort(self.ready, entry[2])
        if entry[3] is not None:
            bisect.insort(self.first_audio, entry[3])

    def expire(self, keep: int, oldest: float) -> None:
        entries = self.entries
        while entries and (len(entries) > keep or entries[0][0] < oldest):
            _, failure, ready, first_audio = entries.popleft()
            if failure is not None:
                self.failures[failure] -= 1
            if ready is not None:
                del self.ready[bisect.bisect_left(self.ready, ready)]
            if first_audio is not None:
                del self.first_audio[bisect.bisect_left(self.first_audio, first_audio)]

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    def sorted(self, signal: LatencySignal) -> list[float]:
        return self.ready if signal == "ready" else self.first_audio


class ReleaseHealth:
    """Judges canaries against the stable release from the outcomes it is told (one process's view)."""

    def __init__(self, rule: HealthRule | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rule = rule or HealthRule()
        self._clock = clock
        self._windows: dict[str, _Window] = {}
        self._breaches: dict[str, Breach] = {}

    def observe(self, outcome: SessionOutcome) -> None:
        window = self._windows.setdefault(outcome.release, _Window())
        now = self._clock()
        window.add(now, outcome)
        window.expire(self.rule.window, now - self.rule.max_age_seconds)

    def verdict(self, canary: str, stable: str) -> Breach | None:
        """The canary's breach, judged now if it has none yet; None while it is not (yet) breached."""
        if canary in self._breaches or canary == stable:
            return self._breaches.get(canary)
        ours, theirs = self._window(canary), self._window(stable)
        if len(ours.entries) < self.rule.min_canary or len(theirs.entries) < self.rule.min_stable:
            return None
        breach = self._failures(canary, ours, theirs) or self._latencies(canary, ours, theirs)
        if breach is not None:
            self._breaches[canary] = breach
        return breach

    def health(self, release: str, stable: str) -> Health:
        breach = self.verdict(release, stable)
        if breach is not None:
            return Health("breached", breach.reason)
        if release != stable:
            seen, stable_seen = len(self._window(release).entries), len(self._window(stable).entries)
            if seen < self.rule.min_canary or stable_seen < self.rule.min_stable:
                return Health("watching", f"{seen} of {self.rule.min_canary} sessions judged "
                                          f"(stable: {stable_seen} of {self.rule.min_stable})")
        return Health("healthy", None)

    def reset(self, release: str) -> None:
        """An operator changed this release's traffic: forget its breach and judge it afresh."""
        self._breaches.pop(release, None)
        self._windows.pop(release, None)

    def _window(self, release: str) -> _Window:
        window = self._windows.get(release)
        if window is None:
            return _Window()
        window.expire(self.rule.window, self._clock() - self.rule.max_age_seconds)
        return window

    def _failures(self, canary: str, ours: _Window, theirs: _Window) -> Breach | None:
        n, failed, n_s, failed_s = len(ours.entries), ours.failed, len(theirs.entries), theirs.failed
        # The posterior cannot pass 1/2 while the observed rates differ by no more than the margin:
        # the integral is only worked out for a canary that already looks worse.
        if failed / n - failed_s / n_s <= self.rule.failure_margin:
            return None
        if probability_worse(failed, n, failed_s, n_s, self.rule.failure_margin) <= self.rule.confidence:
            return None
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(ours.failures.items()) if count)
        return Breach(canary, "failures", f"{failed} of {n} sessions failed ({kinds}) (stable: {failed_s} of {n_s})")

    def _latencies(self, canary: str, ours: _Window, theirs: _Window) -> Breach | None:
        alpha = (1.0 - self.rule.confidence) / 2.0
        for signal, quantiles in LATENCY_QUANTILES.items():
            values, stable_values = ours.sorted(signal), theirs.sorted(signal)
            if len(values) < self.rule.min_canary or len(stable_values) < self.rule.min_stable:
                continue
            for q in quantiles:
                lower, _ = quantile_ranks(len(values), q, alpha)
                _, upper = quantile_ranks(len(stable_values), q, alpha)
                if lower is None or upper is None:
                    continue
                stable_q = _sample_quantile(stable_values, q)
                margin = max(self.rule.latency_margin_seconds, self.rule.latency_margin_share * stable_q)
                if values[lower - 1] > stable_values[upper - 1] + margin:
                    name = f"{_QUANTILE_NAMES.get(q, f'p{round(q * 100)}')} {_SIGNAL_NAMES[signal]}"
                    return Breach(canary, signal, f"{name} {_sample_quantile(values, q):.1f} s over {len(values)} "
                                                  f"sessions (stable: {stable_q:.1f} s over {len(stable_values)})")
        return None


def _sample_quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
