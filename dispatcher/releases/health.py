"""Automatic rollback's judgement: does a canary release hurt callers compared with the stable one?
The rule, why each part is there, and its measured false-rollback rate: docs/releases.md,
"Automatic rollback" (bench/release_false_rollbacks.py).

A canary's window is its last `window` sessions, none older than `max_age_seconds` (counted in
sessions so a 5 % canary still holds a sample). It is compared with the stable release's sessions
over the same hours, and at least its last `stable_sample` (so an incident that hits every release
weighs on both, and a stable's lucky half hour does not count against the canary); as a shortcut,
a canary no worse than the stable's last `window` sessions is not compared further.

With at least `min_canary` and `min_stable` sessions, a canary is **breached** when:
- **failures** (a failed start, a bot error, a session over within SHORT_SESSION_SECONDS): its failed
  share exceeds the stable's by more than `failure_margin` and, with uniform priors, the posterior
  probability that its rate does is above `confidence`; or
- **ready** (median) or **first_audio** (median, p75): the canary's distribution-free lower bound on
  the quantile exceeds the stable's upper bound (each at 1 − (1 − `confidence`)/2) by at least
  max(`latency_margin_seconds`, `latency_margin_share` × the stable's quantile);
- the conversation (conversation.py): **unanswered** and **left_early** as failures are, with
  `conversation_margin`; **turn_latency** (median, p95) and **cut_off** (median, p75) as first audio is.

A breach holds, whatever later sessions show, until an operator gives the release traffic again
(`reset`: dispatcher/sessions/release_watch.py, `judged_afresh`): a rollback never undoes itself.
The stable release is never judged.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from dispatcher.releases.conversation import Talk
from dispatcher.releases.health_stats import probability_worse, quantile_ranks
from dispatcher.releases.health_window import Entry, Sample, Window
from dispatcher.releases.key_shares import within_key_shares
from dispatcher.releases.one_key import CALLER_LED, one_key_decides

SHORT_SESSION_SECONDS = 5.0  # a session that ends sooner than this counts as one that failed the caller
BOUND_SAMPLE = 20  # the stable's starts of one kind (warm, cold) a caller's wait is bounded by, at least

Signal = Literal["failures", "ready", "first_audio", "unanswered", "left_early", "turn_latency", "cut_off"]
ShareSignal = Literal["failures", "unanswered", "left_early"]
LatencySignal = Literal["ready", "first_audio", "turn_latency", "cut_off"]
LATENCY_QUANTILES: dict[LatencySignal, tuple[float, ...]] = {
    "ready": (0.5,), "first_audio": (0.5, 0.75), "turn_latency": (0.5, 0.95), "cut_off": (0.5, 0.75)}
_QUANTILE_NAMES = {0.5: "median", 0.75: "p75", 0.95: "p95"}
_SIGNAL_NAMES: dict[LatencySignal, str] = {"ready": "time to ready", "first_audio": "first audio",
                                           "turn_latency": "turn latency", "cut_off": "bot turns cut off"}
# How each share signal's reason reads: "{n} of {sessions} {words} (stable: {n} of {sessions})".
_SHARE_WORDS: dict[ShareSignal, str] = {"failures": "sessions failed", "unanswered": "sessions left a caller "
                                        "turn unanswered", "left_early": "callers left within the first turn"}


@dataclass(frozen=True)
class SessionOutcome:
    """What one session of a release did to its caller. Observed once per session: at its end, or
    once it has been live longer than SHORT_SESSION_SECONDS (then `ended_within_seconds` is None)."""

    release: str
    failed_start: bool
    bot_error: bool
    ready_seconds: float | None  # start requested → bot ready; None when it never got there
    ended_within_seconds: float | None  # how long the session lasted; None while it is live, or its caller ended it
    first_audio_seconds: float | None = None  # joined → the bot's first audio, where the bot reports it
    talk: Talk | None = None  # the conversation's figures, where the bot host reported them
    key: str | None = None  # the caller's id (not secret): each key weighs at most its share (key_shares.py)
    warm: bool | None = None  # the reserve served its start
    ready_censored: bool = False  # stopped by its caller before ready: `ready_seconds` is their wait

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
    signal: Signal
    reason: str  # for people: "12 of 20 sessions failed (12 bot error) (stable: 3 of 1420)"


@dataclass(frozen=True)
class Health:
    """A release's state as `GET /releases` shows it."""

    state: Literal["healthy", "watching", "breached"]
    reason: str | None


@dataclass(frozen=True)
class HealthRule:
    window: int = 300
    max_age_seconds: float = 12 * 3600.0
    stable_sample: int = 1_000
    history_cap: int = 20_000  # the sessions kept for the comparison with a canary, whatever its hours
    min_canary: int = 20
    min_stable: int = 100
    confidence: float = 0.999  # 0.99 rolled back an identical canary's 4 ordinary failures in 21, once in 250 days
    failure_margin: float = 0.03  # percentage points (0.03 = 3 points) above the stable's rate
    latency_margin_seconds: float = 1.0
    latency_margin_share: float = 0.5  # of the stable's quantile
    turn_latency_margin_seconds: float = 0.5
    conversation_margin: float = 0.05  # unanswered, left early: points above the stable's share
    cut_off_margin: float = 0.2  # the share of bot turns cut off, above the stable's quantile of it
    gave_up_floor_seconds: float = 5.0  # a caller's stop before ready never counts against a bot sooner
    start_wait_seconds: float = 30.0  # START_WAIT_SECONDS: the bound while the stable has no time to ready

    def __post_init__(self) -> None:
        if not (0.5 < self.confidence < 1.0):
            raise ValueError(f"confidence must lie between 0.5 and 1, not {self.confidence}")
        if self.min_canary < 1 or self.min_stable < 1 or self.window < max(self.min_canary, self.min_stable):
            raise ValueError("the window must hold at least the minimum samples, each at least 1")
        if self.history_cap < max(self.window, self.stable_sample):
            raise ValueError("history_cap must be at least the window and the stable sample")


class ReleaseHealth:
    """Judges canaries against the stable release from the sessions it is told (with several replicas,
    their shared sample: dispatcher/sessions/release_watch.py keeps it in step with the store)."""

    def __init__(self, rule: HealthRule | None = None, clock: Callable[[], float] = time.time) -> None:
        self.rule = rule or HealthRule()
        self._clock = clock
        self._windows: dict[str, Window] = {}
        self._breaches: dict[str, Breach] = {}

    def observe(self, outcome: SessionOutcome) -> None:
        self.take(outcome.release, entry_of(outcome, self._clock()))

    def take(self, release: str, entry: Entry) -> None:
        """One session of `release`, observed at the entry's time (epoch seconds: any replica's)."""
        window = self._windows.get(release)
        if window is None:
            rule = self.rule
            window = self._windows[release] = Window(rule.window, rule.max_age_seconds, rule.history_cap)
        window.add(entry)

    def breached(self, release: str) -> bool:
        """Whether `release` was found breached (and not judged afresh since)."""
        return release in self._breaches

    def verdict(self, canary: str, stable: str) -> Breach | None:
        """The canary's breach, judged now if it has none yet; None while it is not (yet) breached."""
        if canary in self._breaches or canary == stable:
            return self._breaches.get(canary)
        window = self._window(stable)
        ours, counted, theirs = self._counted(canary, window)
        if ours.sessions < self.rule.min_canary or theirs.sessions < self.rule.min_stable:
            return None
        for judge in (self._shares, self._latencies):
            if judge(ours, theirs) is None:
                continue
            stable_start = window.since_last(self.rule.stable_sample)
            assert counted and stable_start is not None  # both windows hold sessions
            since = min(counted[0].at, stable_start)
            stable_entries = _within(window.entries_since(since), self._window(canary).entries_since(since))
            found = judge(ours, Sample.of(stable_entries))
            if found is not None and found[0] in CALLER_LED and one_key_decides(
                    judge, counted, stable_entries, min_canary=self.rule.min_canary, min_stable=self.rule.min_stable):
                found = None  # what one key's callers did, not the release
            if found is not None:
                self._breaches[canary] = Breach(canary, *found)
                return self._breaches[canary]
        return None

    def health(self, release: str, stable: str) -> Health:
        breach = self.verdict(release, stable)
        if breach is not None:
            return Health("breached", breach.reason)
        if release != stable:
            ours, _, theirs = self._counted(release, self._window(stable))
            seen, stable_seen = ours.sessions, theirs.sessions
            if seen < self.rule.min_canary or stable_seen < self.rule.min_stable:
                return Health("watching", f"{seen} of {self.rule.min_canary} sessions judged "
                                          f"(stable: {stable_seen} of {self.rule.min_stable})")
        return Health("healthy", None)

    def reset(self, release: str) -> None:
        """An operator changed this release's traffic: forget its breach and judge it afresh."""
        self._breaches.pop(release, None)
        self._windows.pop(release, None)

    def stopped_waiting_bound(self, stable: str, *, warm: bool, cold_start: float | None = None) -> float:
        """How long a caller may wait for a bot before its stop counts as the bot's failed start: the
        stable release's p95 time to ready over its starts of the same kind (`warm`: the reserve served
        it), at least `gave_up_floor_seconds`. Where the stable has too few of that kind: for a cold
        start the dispatcher's quote for one (`cold_start`), else the p95 over all its starts; without
        any yet, `start_wait_seconds`, the longest a start is waited for."""
        entries = self._window(stable).entries
        ready = sorted(e.ready for e in entries if e.ready is not None and not e.censored)
        alike = sorted(e.ready for e in entries if e.ready is not None and not e.censored and e.warm is warm)
        if len(alike) >= BOUND_SAMPLE:
            return max(self.rule.gave_up_floor_seconds, _sample_quantile(alike, 0.95))
        if not warm and cold_start is not None:
            return max(self.rule.gave_up_floor_seconds, cold_start)
        if not ready:
            return self.rule.start_wait_seconds
        return max(self.rule.gave_up_floor_seconds, _sample_quantile(ready, 0.95))

    def _counted(self, canary: str, stable: Window) -> tuple[Sample, Sequence[Entry], Sample]:
        """Both releases' recent sessions as judged, each key's within its share of the traffic over
        the same hours (key_shares.py): the canary's sample and its sessions, and the stable's sample."""
        ours = self._window(canary)
        drawn = list(ours.entries)
        kept = _keyed_within(drawn, stable, drawn[0].at) if drawn else None
        theirs_kept = _keyed_within(stable.entries, ours, stable.since) if stable.entries else None
        theirs = stable.recent if theirs_kept is None else Sample.of(theirs_kept)
        if kept is None:
            return ours.recent, drawn, theirs
        return Sample.of(kept), kept, theirs

    def _window(self, release: str) -> Window:
        window = self._windows.get(release)
        if window is None:
            return Window(self.rule.window, self.rule.max_age_seconds, self.rule.history_cap)
        window.expire(self._clock())
        return window

    def _shares(self, ours: Sample, theirs: Sample) -> tuple[Signal, str] | None:
        for signal in _SHARE_WORDS:
            (n, bad), (n_s, bad_s) = ours.count(signal), theirs.count(signal)
            margin = self.rule.failure_margin if signal == "failures" else self.rule.conversation_margin
            if n < self.rule.min_canary or n_s < self.rule.min_stable or bad / n - bad_s / n_s <= margin:
                continue  # a canary not seen worse by more than the margin than the stable is not worse
            if probability_worse(bad, n, bad_s, n_s, margin) <= self.rule.confidence:
                continue
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(ours.failures.items()) if count)
            said = f" ({kinds})" if signal == "failures" else ""
            return signal, f"{bad} of {n} {_SHARE_WORDS[signal]}{said} (stable: {bad_s} of {n_s})"
        return None

    def _latencies(self, ours: Sample, theirs: Sample) -> tuple[Signal, str] | None:
        alpha = (1.0 - self.rule.confidence) / 2.0
        for signal, quantiles in LATENCY_QUANTILES.items():
            values, stable_values = ours.latency(signal), theirs.latency(signal, censored_high=True)
            if len(values) < self.rule.min_canary or len(stable_values) < self.rule.min_stable:
                continue
            for q in quantiles:
                lower, _ = quantile_ranks(len(values), q, alpha)
                _, upper = quantile_ranks(len(stable_values), q, alpha)
                if lower is None or upper is None:
                    continue
                stable_q = _sample_quantile(stable_values, q)
                if values[lower - 1] > stable_values[upper - 1] + self._margin(signal, stable_q):
                    name = f"{_QUANTILE_NAMES.get(q, f'p{round(q * 100)}')} {_SIGNAL_NAMES[signal]}"
                    shown = _percent if signal == "cut_off" else _seconds
                    return signal, (f"{name} {shown(_sample_quantile(values, q))} over {len(values)} sessions "
                                    f"(stable: {shown(stable_q)} over {len(stable_values)})")
        return None

    def _margin(self, signal: LatencySignal, stable_q: float) -> float:
        if signal == "cut_off":
            return self.rule.cut_off_margin
        rule = self.rule
        seconds = rule.turn_latency_margin_seconds if signal == "turn_latency" else rule.latency_margin_seconds
        return max(seconds, rule.latency_margin_share * stable_q)


def _keyed_within(entries: Sequence[Entry], other: Window, since: float | None) -> list[Entry] | None:
    """`entries` cut to each key's share of the traffic with `other`'s sessions since `since`, or None
    when none is cut (at once where no entry has a key: one look, not a walk through `other`)."""
    if since is None or all(entry.key is None for entry in entries):
        return None
    return within_key_shares(entries, other.entries_since(since))


def _within(entries: Sequence[Entry], other: Sequence[Entry]) -> Sequence[Entry]:
    """`entries` as judged, each key's within its share of `other`'s (key_shares.py)."""
    kept = within_key_shares(entries, other)
    return entries if kept is None else kept


def entry_of(outcome: SessionOutcome, at: float) -> Entry:
    """What the judge keeps of one session observed at `at`."""
    return Entry(at, outcome.failure, outcome.ready_seconds, outcome.first_audio_seconds, outcome.talk, outcome.key,
                 outcome.warm, outcome.ready_censored)


def _seconds(value: float) -> str:
    return f"{value:.1f} s"


def _percent(share: float) -> str:
    return f"{share * 100:.0f} %"


def _sample_quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
